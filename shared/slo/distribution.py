"""Cloud Monitoring distributions (histograms): merge, percentile, share above a threshold.

Bucket layouts follow ``google.api.Distribution.BucketOptions``: bucket 0 is the underflow
bucket, buckets 1..N the finite ones, bucket N+1 the overflow bucket.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Histogram:
    """Bucket counts and ``bounds``, the N+1 edges between N+2 buckets (metric's unit)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.counts)

    def bucket(self, i: int) -> tuple[float, float]:
        """Lower and upper edge of bucket ``i`` (±inf for underflow and overflow)."""
        lower = -math.inf if i == 0 else self.bounds[i - 1]
        upper = math.inf if i >= len(self.bounds) else self.bounds[i]
        return lower, upper

    def merged(self, other: Histogram) -> Histogram:
        """The sum of two histograms of the same layout."""
        if other.bounds != self.bounds:
            raise ValueError("cannot merge distributions with different bucket layouts")
        size = max(len(self.counts), len(other.counts))
        a = self.counts + (0,) * (size - len(self.counts))
        b = other.counts + (0,) * (size - len(other.counts))
        return Histogram(self.bounds, tuple(x + y for x, y in zip(a, b, strict=True)))

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0 < q <= 100), interpolated linearly inside its bucket.

        Underflow counts as starting at 0 (latencies are never negative); a rank that falls in
        the overflow bucket is reported as the overflow's lower edge, the largest known value.
        """
        total = self.total
        if total == 0:
            return None
        rank = q / 100 * total
        seen = 0
        for i, count in enumerate(self.counts):
            if count == 0:
                continue
            if seen + count >= rank:
                lower, upper = self.bucket(i)
                lower = max(lower, 0.0) if lower == -math.inf else lower
                if upper == math.inf:
                    return lower
                if lower > upper:  # underflow bucket whose upper edge is negative
                    return upper
                return lower + (upper - lower) * (rank - seen) / count
            seen += count
        return self.bucket(len(self.counts) - 1)[0]

    def count_at_or_above(self, threshold: float) -> float:
        """Events at or above ``threshold``, splitting the straddling bucket linearly."""
        slow = 0.0
        for i, count in enumerate(self.counts):
            if count == 0:
                continue
            lower, upper = self.bucket(i)
            if lower >= threshold:
                slow += count
            elif upper > threshold:
                if upper == math.inf or lower == -math.inf:
                    slow += count  # no width to interpolate: count the bucket as slow
                else:
                    slow += count * (upper - threshold) / (upper - lower)
        return slow


def linear_bounds(num_finite_buckets: int, width: float, offset: float) -> tuple[float, ...]:
    return tuple(offset + width * i for i in range(num_finite_buckets + 1))


def exponential_bounds(num_finite_buckets: int, growth: float, scale: float) -> tuple[float, ...]:
    return tuple(scale * growth**i for i in range(num_finite_buckets + 1))


def explicit_bounds(bounds: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(b) for b in bounds)
