"""``python -m scripts.deploy``: see :mod:`scripts.deploy`."""

from scripts.deploy.cli import main

raise SystemExit(main())
