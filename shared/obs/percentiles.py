"""Latency percentiles and a bounded, thread-safe window of recent latencies.

Percentiles use linear interpolation between closest ranks, the same as numpy's default
``method="linear"``, so numbers agree with notebooks and with the benchmarks.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass


def _check_q(q: float) -> None:
    if not 0.0 <= q <= 100.0:  # also rejects NaN
        raise ValueError(f"percentile q must be within [0, 100], got {q!r}")


def _interpolate(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of already sorted, non-empty ``ordered``."""
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    lower, upper = ordered[low], ordered[high]
    # numpy's lerp: interpolating from the nearer end keeps the result monotone and in bounds.
    if fraction >= 0.5:
        return upper - (upper - lower) * (1.0 - fraction)
    return lower + (upper - lower) * fraction


def _sorted_finite(values: Sequence[float]) -> list[float]:
    if len(values) == 0:
        raise ValueError("cannot compute percentiles of an empty sequence")
    ordered = sorted(float(v) for v in values)
    if not all(map(math.isfinite, ordered)):
        raise ValueError("values must be finite numbers (no NaN or infinity)")
    return ordered


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile, ``q`` in [0, 100], linearly interpolated; ValueError if empty."""
    _check_q(q)
    return _interpolate(_sorted_finite(values), q)


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Distribution of a set of latencies, all in the unit of the input (usually milliseconds)."""

    count: int
    mean: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float

    def as_dict(self) -> dict[str, float]:
        """The summary as a JSON-friendly dict."""
        return asdict(self)


def summarize(values: Sequence[float]) -> LatencySummary:
    """Count, mean, min, p50/p90/p95/p99 and max of ``values``; ValueError if empty."""
    ordered = _sorted_finite(values)
    return LatencySummary(
        count=len(ordered),
        mean=math.fsum(ordered) / len(ordered),
        min=ordered[0],
        p50=_interpolate(ordered, 50),
        p90=_interpolate(ordered, 90),
        p95=_interpolate(ordered, 95),
        p99=_interpolate(ordered, 99),
        max=ordered[-1],
    )


class LatencyWindow:
    """Thread-safe recorder of recent latencies, bounded by count and/or age.

    ``max_count`` keeps only the newest samples; ``max_age`` (seconds on ``clock``, default
    :func:`time.monotonic`) drops older ones whenever the window is written or read. At least one
    bound is required so memory stays bounded.
    """

    def __init__(
        self,
        max_count: int | None = 1000,
        max_age: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_count is None and max_age is None:
            raise ValueError("LatencyWindow needs max_count, max_age or both")
        if max_count is not None and max_count < 1:
            raise ValueError(f"max_count must be >= 1, got {max_count!r}")
        if max_age is not None and not max_age > 0:
            raise ValueError(f"max_age must be > 0 seconds, got {max_age!r}")
        self.max_count = max_count
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        # (recorded at, latency, outcome): outcome None when the caller did not say.
        self._samples: deque[tuple[float, float, bool | None]] = deque(maxlen=max_count)

    def record(self, latency_ms: float, ok: bool | None = None) -> None:
        """Add one latency (milliseconds) and, optionally, whether that call succeeded."""
        value = float(latency_ms)
        if not math.isfinite(value):
            raise ValueError(f"latency must be a finite number, got {latency_ms!r}")
        with self._lock:
            now = self._clock()
            self._expire(now)
            self._samples.append((now, value, ok))

    def _expire(self, now: float) -> None:
        if self.max_age is None:
            return
        horizon = now - self.max_age
        samples = self._samples
        while samples and samples[0][0] < horizon:
            samples.popleft()

    def _current(self) -> list[tuple[float, float, bool | None]]:
        with self._lock:
            self._expire(self._clock())
            return list(self._samples)

    def __len__(self) -> int:
        return len(self._current())

    def values(self) -> list[float]:
        """The latencies in the window, oldest first."""
        return [latency for _, latency, _ in self._current()]

    def summary(self) -> LatencySummary | None:
        """Summary of the latencies in the window; None when it is empty."""
        values = self.values()
        return summarize(values) if values else None

    @property
    def error_rate(self) -> float | None:
        """Failed / recorded outcomes in the window; None when no outcome was recorded."""
        outcomes = [ok for _, _, ok in self._current() if ok is not None]
        if not outcomes:
            return None
        return outcomes.count(False) / len(outcomes)

    def clear(self) -> None:
        """Forget every sample."""
        with self._lock:
            self._samples.clear()
