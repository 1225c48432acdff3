"""``python -m shared.canary``: see :mod:`shared.canary.cli`."""

from __future__ import annotations

import sys

from shared.canary.cli import main

if __name__ == "__main__":
    sys.exit(main())
