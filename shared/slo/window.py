"""The time window an SLI is measured over, aligned so retries see the same window."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.slo.durations import format_duration


@dataclass(frozen=True, slots=True, order=True)
class Window:
    """The half-open interval ``[start, end)`` in epoch seconds."""

    start: float
    end: float

    @classmethod
    def ending_at(cls, end: float, seconds: float) -> Window:
        return cls(end - seconds, end)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def label(self) -> str:
        """The window's length as the SLO file writes it (``5m``, ``1h``)."""
        return format_duration(self.seconds)

    def start_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.start, UTC)

    def end_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.end, UTC)

    def key(self) -> str:
        """A compact, sortable, id-safe name: ``20261126T1205Z-5m`` (end instant, length)."""
        return f"{self.end_datetime():%Y%m%dT%H%M%SZ}-{self.label}"


def aligned_end(now: float, step: float) -> float:
    """The last multiple of ``step`` seconds at or before ``now`` (epoch seconds).

    Cloud Scheduler fires on the boundary; aligning makes a retried or concurrent run of the same
    tick evaluate exactly the same window, so its records collide instead of doubling.
    """
    return math.floor(now / step) * step
