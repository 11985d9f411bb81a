"""`python -m keras_initx`: the `keras-initx` command line (see `keras_initx.cli`)."""

import sys

from keras_initx.cli import main

if __name__ == "__main__":
    sys.exit(main())
