"""Command line shared by every example: `--out DIR` and `--smoke` (also KERAS_INITX_SMOKE=1).

Imported as `from _common import parse_args`: running `python examples/x.py` puts this folder on
`sys.path`.
"""

import argparse
import os


def parse_args(doc: str, default_out: str, smoke: str = "tiny sizes") -> argparse.Namespace:
    """Parse the example's command line.

    Args:
        doc: the example's module docstring; its first line describes the script in `--help`.
        default_out: the folder for figures and tables when `--out` is not given.
        smoke: what `--smoke` shrinks, for its help text.

    Returns:
        The namespace with `out` (str) and `smoke` (bool).
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", default=default_out)
    parser.add_argument(
        "--smoke",
        action="store_true",
        default=os.environ.get("KERAS_INITX_SMOKE") == "1",
        help=f"{smoke}, for tests (also KERAS_INITX_SMOKE=1)",
    )
    return parser.parse_args()
