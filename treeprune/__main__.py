"""``python -m treeprune``: the command line (see :mod:`treeprune.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
