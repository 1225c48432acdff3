"""Judge one measurement against its SLO's objective: ok, violation, or no data."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from shared.slo.config import Slo
from shared.slo.measurement import Measurement

Status = Literal["ok", "violation", "no_data", "error"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome and the observed SLI value (good ratio, or percentile latency in ms)."""

    status: Status
    value: float | None


def evaluate(slo: Slo, measurement: Measurement) -> Verdict:
    """``no_data`` when nothing was measured (never a silent pass); else ok or violation.

    Objectives are strict as written in the seed: ``p95 < 900 ms`` fails at 900 ms, and a ratio
    goal of 0.99 fails at exactly 99% good. Ratios are compared exactly (no float rounding).
    """
    if measurement.empty:
        return Verdict("no_data", None)
    if slo.method == "latency_percentile":
        value = measurement.value
        if value is None or slo.threshold_ms is None:
            return Verdict("no_data", None)
        return Verdict("ok" if value < slo.threshold_ms else "violation", value)
    good = Fraction(measurement.total) - Fraction(measurement.bad)
    ratio = good / Fraction(measurement.total)
    passed = ratio > Fraction(str(slo.goal))
    return Verdict("ok" if passed else "violation", float(ratio))


def describe_value(slo: Slo, value: float | None) -> str:
    """The observed value as people read it: ``1234 ms`` or ``97.5% good``."""
    if value is None:
        return "no data"
    if slo.method == "latency_percentile":
        return f"p{slo.percentile} {value:.0f} ms"
    return f"{value * 100:.3g}% good ({(1 - value) * 100:.3g}% bad)"
