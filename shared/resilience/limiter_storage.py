"""Where a sliding-window limiter keeps its log of acquisitions: the adapter protocol and memory.

The rule every store applies atomically: the decision time is ``at = max(now, newest recorded
timestamp)`` — callers read their clocks before they reach the store, so a caller that read the
clock earlier may arrive later, and without this clamp its window would miss entries already
pruned for a later caller. An acquisition is allowed when fewer than ``limit`` recorded
timestamps are ``> at - window``, and is then recorded at ``at``. Recorded timestamps therefore
never decrease, and no half-open interval of ``window`` seconds ever holds more than ``limit`` of
them, whatever the interleaving of threads or processes. A clock running ahead only makes the
limiter stricter (its stamps stay in the window longer), never looser.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass
from typing import Protocol

# Idle keys are swept every this many calls, so one-off keys cannot grow the store forever.
_SWEEP_AT = 1024


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one acquisition; truthy when allowed.

    ``retry_after`` is the seconds until a slot frees (0.0 when allowed) — a lower bound under
    contention; ``remaining`` is the slots still free in the window after this decision; ``at``
    is the store's decision time (the recorded timestamp when allowed; see the module notes).
    """

    allowed: bool
    retry_after: float
    remaining: int
    at: float

    def __bool__(self) -> bool:
        return self.allowed


class LimiterStorage(Protocol):
    """Keeps sliding-window logs; ``acquire`` must check and record atomically."""

    def acquire(self, key: str, limit: int, window: float, now: float) -> Decision:
        """Record an acquisition at ``now`` (seconds) under ``key`` if the window has room."""
        ...

    def reset(self, key: str) -> None:
        """Forget every acquisition under ``key``."""
        ...


def decide(log: list[float], limit: int, window: float, now: float) -> Decision:
    """Apply one acquisition to a sorted log in place (the rule of the module notes)."""
    at = max(now, log[-1]) if log else now
    drop = bisect_right(log, at - window)
    if drop:
        del log[:drop]
    if len(log) < limit:
        log.append(at)
        return Decision(True, 0.0, limit - len(log), at)
    # The slot frees when the (count - limit + 1)-th oldest timestamp leaves the window.
    return Decision(False, max(0.0, log[len(log) - limit] + window - now), 0, at)


class MemoryLimiterStorage:
    """Sliding-window logs in this process's memory; thread-safe, O(limit) per acquisition."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, tuple[float, list[float]]] = {}
        self._calls = 0

    def acquire(self, key: str, limit: int, window: float, now: float) -> Decision:
        with self._lock:
            self._calls += 1
            if self._calls % _SWEEP_AT == 0:
                self._sweep(now)
            slot = self._logs.get(key)
            if slot is None or slot[0] != window:
                # A new window length keeps the old log: dropping it could exceed the limit.
                slot = self._logs[key] = (window, slot[1] if slot else [])
            return decide(slot[1], limit, window, now)

    def reset(self, key: str) -> None:
        with self._lock:
            self._logs.pop(key, None)

    def _sweep(self, now: float) -> None:
        # Caller holds the lock.
        idle = [k for k, (w, log) in self._logs.items() if not log or log[-1] <= now - w]
        for k in idle:
            del self._logs[k]
