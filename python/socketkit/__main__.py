"""`python -m socketkit`: the command line (see socketkit.cli)."""

import sys

from socketkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
