"""``python -m jobbers ...``: the ``jobbers`` command (``jobbers.shell``)."""

from __future__ import annotations

import sys

from jobbers.shell import main

if __name__ == "__main__":
    sys.exit(main())
