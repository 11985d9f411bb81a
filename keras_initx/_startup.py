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

# absl's record prefix `I0000 00:00:1796252385.329954   28331 port.cc:153] ...` (I, W, E, F for
# INFO to FATAL), and the line absl prints before the first record of an uninitialized logger.
_RECORD = re.compile(r"^[IWEF]\d{4} [\d:.]+ +\d+ [^\]]+\] ")
_UNINITIALIZED = "WARNING: All log messages before absl::InitializeLog() is called"
# A Python warning (`path.py:12: UserWarning: ...`) also starts a new record.
_PYTHON_WARNING = re.compile(r"^\S+:\d+: \w+: ")


def _without_info(text: str) -> str:
    """`text` less its absl INFO records, each with its continuation lines (a record such as
    "This TensorFlow binary is optimized..." spans two lines)."""
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        if line.startswith(_UNINITIALIZED):
            continue
        if _RECORD.match(line) or _PYTHON_WARNING.match(line):
            dropping = line.startswith("I")
        if not dropping:
            kept.append(line)
    return "".join(kept)


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
            kept = _without_info(captured.read().decode(errors="replace"))
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()
