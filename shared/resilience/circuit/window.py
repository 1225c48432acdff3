"""The sliding window of the rate rules: resilience4j's count-based window over the last calls."""

from __future__ import annotations

from collections import deque

__all__ = ["SlidingWindow"]


class SlidingWindow:
    """Outcomes of the last ``size`` calls, with running counts of failed and slow ones."""

    __slots__ = ("_outcomes", "failures", "size", "slow")

    def __init__(self, size: int) -> None:
        self.size = size
        # One int per call: bit 0 = failed, bit 1 = slow.
        self._outcomes: deque[int] = deque(maxlen=size)
        self.failures = 0
        self.slow = 0

    def __len__(self) -> int:
        return len(self._outcomes)

    def add(self, failed: bool, slow: bool) -> None:
        """Record one call; the oldest drops out once ``size`` calls are recorded."""
        outcomes = self._outcomes
        if len(outcomes) == self.size:
            old = outcomes[0]
            self.failures -= old & 1
            self.slow -= old >> 1
        outcomes.append(failed | (slow << 1))
        self.failures += failed
        self.slow += slow

    def rate(self, count: int) -> float | None:
        """``count`` as a percentage of the recorded calls (None when there are none)."""
        calls = len(self._outcomes)
        return 100.0 * count / calls if calls else None

    def verdict(
        self, minimum_calls: int, failure_rate: float | None, slow_call_rate: float | None
    ) -> str | None:
        """Why the circuit must open (a threshold reached over enough calls), or None."""
        calls = len(self._outcomes)
        if calls < minimum_calls:
            return None
        for count, threshold, what in (
            (self.failures, failure_rate, "failure rate"),
            (self.slow, slow_call_rate, "slow-call rate"),
        ):
            if threshold is not None and count * 100.0 >= threshold * calls:
                return (
                    f"{what} {100.0 * count / calls:.1f}% >= {threshold:g}% "
                    f"over the last {calls} calls"
                )
        return None
