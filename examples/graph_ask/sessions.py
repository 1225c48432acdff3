"""The dependencies' sessions: :mod:`shared.resilience.sessions` (one lazy pooled session each)."""

from __future__ import annotations

from shared.resilience.sessions import POOL_SIZE, LazySession

__all__ = ["POOL_SIZE", "LazySession"]
