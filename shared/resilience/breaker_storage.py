"""Breaker storages, kept importable here: they live in :mod:`shared.resilience.circuit.storage`."""

from __future__ import annotations

from shared.resilience.circuit.storage import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    STATES,
    BreakerStorage,
    MemoryStorage,
    RedisStorage,
    Snapshot,
    State,
)

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "STATES",
    "BreakerStorage",
    "MemoryStorage",
    "RedisStorage",
    "Snapshot",
    "State",
]
