"""What a circuit reports about itself: a frozen snapshot."""

from __future__ import annotations

from dataclasses import dataclass

from shared.resilience.circuit.states import CircuitState
from shared.resilience.circuit.storage import HALF_OPEN, BreakerStorage, Snapshot, State

__all__ = ["BreakerStats"]


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """A snapshot of one circuit. Rates are percentages over the sliding window (None if empty)."""

    name: str
    state: State
    consecutive_failures: int
    half_open_successes: int
    opened_at: float | None
    retry_after: float
    window_calls: int
    window_failures: int
    window_slow_calls: int
    failure_rate: float | None
    slow_call_rate: float | None
    probes_in_flight: int
    storage: str
    storage_ok: bool

    @classmethod
    def of(
        cls,
        name: str,
        state: State,
        retry_after: float,
        stored: Snapshot,
        successes: int,
        current: CircuitState,
        storage: BreakerStorage,
        storage_ok: bool,
    ) -> BreakerStats:
        """The stats of a circuit meeting ``state`` now, whose storage held ``stored``, and
        whose own state object is ``current`` (its window and probes are this instance's)."""
        _, opened_at, fails = stored
        window = current.window
        return cls(
            name=name,
            state=state,
            consecutive_failures=fails,
            half_open_successes=successes,
            opened_at=opened_at,
            retry_after=retry_after,
            window_calls=len(window) if window is not None else 0,
            window_failures=window.failures if window is not None else 0,
            window_slow_calls=window.slow if window is not None else 0,
            failure_rate=window.rate(window.failures) if window is not None else None,
            slow_call_rate=window.rate(window.slow) if window is not None else None,
            probes_in_flight=current.probes if state == HALF_OPEN else 0,
            storage=type(storage).__name__,
            storage_ok=storage_ok,
        )
