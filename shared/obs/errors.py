"""The root exception of ``shared.obs``."""

from __future__ import annotations


class ObsError(ValueError):
    """An invalid argument or setting of ``shared.obs`` (the message lists the valid ones)."""
