"""A playbook's short rehearsal setting, next to its full one, chosen by ``PLAYBOOK_REHEARSAL``.

Each playbook declares its rehearsal values as the argument ``rehearsal`` of the project's
control (:mod:`shared.chaos.ctk.controls`); with ``PLAYBOOK_REHEARSAL=1`` they replace the
configuration before anything runs. A value the caller set explicitly (``chaos run --var``)
differs from what the playbook alone would give, and is kept.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from shared.settings import Env

__all__ = ["REHEARSAL_ENV", "apply_rehearsal", "rehearsing"]

REHEARSAL_ENV = "PLAYBOOK_REHEARSAL"


def rehearsing(env: Env | None = None) -> bool:
    """True when ``PLAYBOOK_REHEARSAL`` asks for the short setting (a bad value fails)."""
    reader = env or Env()
    value = reader.flag(REHEARSAL_ENV, False)
    reader.check()
    return value


def apply_rehearsal(
    configuration: MutableMapping[str, Any],
    baseline: Mapping[str, Any],
    rehearsal: Mapping[str, Any],
) -> dict[str, Any]:
    """Put ``rehearsal`` values into ``configuration`` where it still equals ``baseline``.

    ``baseline`` is the configuration the playbook alone gives (its values and environment
    variables, no ``--var``). Returns what was applied.
    """
    applied: dict[str, Any] = {}
    for key, value in rehearsal.items():
        if key not in configuration:
            continue  # a rehearsal value for nothing the playbook declares: ignored
        if configuration[key] == baseline.get(key):
            configuration[key] = value
            applied[key] = value
    return applied
