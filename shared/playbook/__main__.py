"""``python -m shared.playbook``: see :mod:`shared.playbook.cli`."""

from __future__ import annotations

import sys

from shared.playbook.cli import main

if __name__ == "__main__":
    sys.exit(main())
