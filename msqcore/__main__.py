import sys

from msqcore.cli import main

if __name__ == "__main__":
    sys.exit(main())
