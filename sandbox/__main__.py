"""``python -m sandbox``: run the four back-ends in the foreground until Ctrl-C (or SIGTERM)."""

import sys

from sandbox.runner import main

if __name__ == "__main__":
    sys.exit(main())
