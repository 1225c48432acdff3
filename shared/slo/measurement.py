"""What a source saw over one window: the raw material of evaluation and burn rates."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Measurement:
    """Events seen in one window.

    ``total`` counts the valid events and ``bad`` those that spent error budget (errors, or
    requests at or above the latency threshold; may be fractional when estimated from histogram
    buckets). ``value`` is the measured percentile latency in milliseconds for
    ``latency_percentile`` SLIs and None for ratios, whose value is derived.
    """

    total: float
    bad: float
    value: float | None = None

    @property
    def empty(self) -> bool:
        return self.total <= 0

    @property
    def bad_fraction(self) -> float | None:
        """Bad events over valid events, or None without data."""
        return None if self.empty else min(1.0, max(0.0, self.bad / self.total))
