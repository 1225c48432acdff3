"""Durations as the SLO file writes them (``30s``, ``5m``, ``1h``, ``3d``) and back."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(value: object) -> int:
    """Whole seconds from ``'5m'``-style text or a positive integer of seconds.

    Raises ``ValueError`` naming the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m, 1h, 3d; got {value!r}")
    if isinstance(value, int):
        seconds = value
    else:
        match = _PATTERN.match(str(value))
        if match is None:
            raise ValueError(
                f"expected a duration like 30s, 5m, 1h, 3d (or whole seconds); got {value!r}"
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"a duration must be > 0 seconds; got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact label for ``seconds``: 300 → ``5m``, 259200 → ``3d``, 90 → ``90s``."""
    whole = int(seconds)
    for unit in ("d", "h", "m"):
        size = _UNITS[unit]
        if whole == seconds and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s" if whole == seconds else f"{seconds:g}s"
