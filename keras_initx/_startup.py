"""TensorFlow's native start-up lines, kept off the terminal when the package is imported.

TensorFlow 2.21 logs its C++ start-up INFO lines (oneDNN, "Could not find cuda drivers") through
absl before absl's logging is initialized, and absl then writes every message to stderr whatever
`TF_CPP_MIN_LOG_LEVEL` says. `native_startup_filtered` runs the first TensorFlow import with file
descriptor 2 sent to a temporary file and writes back every line but those INFO lines (warnings
and errors pass, in order), so `keras-initx --help` or `list` print no TensorFlow chatter.
`TF_CPP_MIN_LOG_LEVEL=0` set by the user keeps them.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

__all__ = ["native_startup_filtered"]

# absl's INFO prefix `I0000 00:00:1796252385.329954   28331 port.cc:153] ...` and the line absl
# prints before the first message of an uninitialized logger.
_STARTUP_INFO = re.compile(
    r"^(?:I\d{4} [\d:.]+ +\d+ [^\]]+\] |WARNING: All log messages before absl::InitializeLog\(\))"
)


@contextlib.contextmanager
def native_startup_filtered() -> Iterator[None]:
    """Run the body (an import that may load TensorFlow) with its native INFO lines dropped."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):
        yield  # no real stderr file descriptor (an embedded interpreter): nothing to filter
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not _STARTUP_INFO.match(line))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
