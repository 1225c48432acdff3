"""The health gate: given canary (and baseline) observations, advance, hold or roll back.

Pure and deterministic. Rules, in order:

1. Rollback when a threshold is breached with enough data: canary p95 above ``max_p95_ms``,
   error rate above ``max_error_rate``, or (with a baseline) p95 above ``baseline p95 *
   max_p95_ratio`` or error rate above ``baseline error rate + max_error_rate_increase``.
   With fewer than ``min_requests`` canary requests, only a certain breach counts: more errors
   than ``max_error_rate * min_requests``, which no later success can bring back under.
2. Hold when there is not enough data (canary or, for relative checks, baseline requests below
   ``min_requests``, or no latency), or when the rollout is already at its last stage.
3. Otherwise advance to the next stage (default 10 → 50 → 100 percent).

Latencies are milliseconds; rates are fractions in [0, 1].
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from shared.canary.errors import CanaryConfigError
from shared.obs.percentiles import LatencySummary, LatencyWindow

Verdict: TypeAlias = Literal["advance", "hold", "rollback"]
DEFAULT_STAGES: Final[tuple[int, ...]] = (10, 50, 100)


def check_stages(stages: Sequence[int]) -> tuple[int, ...]:
    """Validated stages: strictly increasing integer percents in (0, 100], ending at 100."""
    out = tuple(stages)
    if (
        not out
        or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= 100 for s in out)
        or any(a >= b for a, b in itertools.pairwise(out))
        or out[-1] != 100
    ):
        raise CanaryConfigError(
            f"stages must be strictly increasing integer percents in (0, 100] ending at 100, "
            f"like {list(DEFAULT_STAGES)}; got {list(out)!r}"
        )
    return out


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When the canary is unhealthy. ``None`` disables a relative check."""

    max_p95_ms: float
    max_error_rate: float
    min_requests: int = 100
    max_p95_ratio: float | None = None
    max_error_rate_increase: float | None = None

    def __post_init__(self) -> None:
        if not _positive(self.max_p95_ms):
            raise CanaryConfigError(f"max_p95_ms must be a number > 0, got {self.max_p95_ms!r}")
        if not _fraction(self.max_error_rate):
            raise CanaryConfigError(
                f"max_error_rate must be a fraction in [0, 1], got {self.max_error_rate!r}"
            )
        if (
            isinstance(self.min_requests, bool)
            or not isinstance(self.min_requests, int)
            or self.min_requests < 1
        ):
            raise CanaryConfigError(
                f"min_requests must be an integer >= 1, got {self.min_requests!r}"
            )
        if self.max_p95_ratio is not None and not (
            _positive(self.max_p95_ratio) and self.max_p95_ratio >= 1
        ):
            raise CanaryConfigError(
                "max_p95_ratio must be a number >= 1 (1.2 = 20% slower), "
                f"got {self.max_p95_ratio!r}"
            )
        if self.max_error_rate_increase is not None and not _fraction(self.max_error_rate_increase):
            raise CanaryConfigError(
                "max_error_rate_increase must be a fraction in [0, 1], "
                f"got {self.max_error_rate_increase!r}"
            )


@dataclass(frozen=True, slots=True)
class Observation:
    """Traffic of one version over the evaluation window: requests, failed ones, p95 (ms)."""

    requests: int
    errors: int
    p95_ms: float | None

    def __post_init__(self) -> None:
        if (
            isinstance(self.requests, bool)
            or not isinstance(self.requests, int)
            or isinstance(self.errors, bool)
            or not isinstance(self.errors, int)
            or not 0 <= self.errors <= self.requests
        ):
            raise CanaryConfigError(
                f"an observation needs integers 0 <= errors <= requests, "
                f"got requests={self.requests!r} errors={self.errors!r}"
            )
        if self.p95_ms is not None and not (
            isinstance(self.p95_ms, int | float) and math.isfinite(self.p95_ms) and self.p95_ms >= 0
        ):
            raise CanaryConfigError(f"p95_ms must be a finite number >= 0, got {self.p95_ms!r}")

    @property
    def error_rate(self) -> float | None:
        """errors / requests; None without requests."""
        return self.errors / self.requests if self.requests else None

    @classmethod
    def from_summary(cls, summary: LatencySummary | None, *, errors: int) -> Observation:
        """From a latency summary (its count is the request count) and an error count."""
        if summary is None:
            return cls(0, 0, None)
        return cls(summary.count, errors, summary.p95)

    @classmethod
    def from_window(cls, window: LatencyWindow) -> Observation:
        """From a :class:`LatencyWindow` whose samples were recorded with their outcome."""
        summary = window.summary()
        rate = window.error_rate
        if summary is None:
            return cls(0, 0, None)
        errors = round((rate or 0.0) * summary.count)
        return cls(summary.count, errors, summary.p95)


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's verdict. ``next_percent`` is the canary's share after applying it (0 after a
    rollback); ``breaches`` names the thresholds breached (empty unless rolling back)."""

    verdict: Verdict
    current_percent: int
    next_percent: int
    reasons: tuple[str, ...]
    breaches: tuple[str, ...] = ()


def next_stage(current: int, stages: Sequence[int]) -> int | None:
    """The first stage above ``current``; None at or beyond the last one."""
    for stage in stages:
        if stage > current:
            return stage
    return None


def evaluate(
    current_percent: int,
    canary: Observation,
    thresholds: Thresholds,
    *,
    baseline: Observation | None = None,
    stages: Sequence[int] = DEFAULT_STAGES,
) -> Decision:
    """Decide for a canary now serving ``current_percent`` percent (0 = not yet started)."""
    plan = check_stages(stages)
    if isinstance(current_percent, bool) or not 0 <= current_percent <= 100:
        raise CanaryConfigError(f"current_percent must be in [0, 100], got {current_percent!r}")
    breaches = _breaches(canary, baseline, thresholds)
    if breaches:
        return Decision(
            "rollback", current_percent, 0, tuple(reason for _, reason in breaches),
            tuple(name for name, _ in breaches),
        )  # fmt: skip
    waiting = _not_enough(canary, baseline, thresholds)
    if waiting:
        return Decision("hold", current_percent, current_percent, tuple(waiting))
    following = next_stage(current_percent, plan)
    if following is None:
        return Decision(
            "hold", current_percent, current_percent, (f"rollout complete at {current_percent}%",)
        )
    return Decision(
        "advance",
        current_percent,
        following,
        (f"healthy at {current_percent}%: {_health(canary, baseline)}",),
    )


def _breaches(
    canary: Observation, baseline: Observation | None, t: Thresholds
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    enough = canary.requests >= t.min_requests
    if not enough:
        # Certain regardless of what the missing requests do.
        if canary.errors > t.max_error_rate * t.min_requests:
            out.append(
                (
                    "error_rate",
                    f"{canary.errors} errors already exceed {t.max_error_rate:.2%} of the "
                    f"{t.min_requests} requests needed",
                )
            )
        return out
    rate = canary.error_rate or 0.0
    if rate > t.max_error_rate:
        out.append(("error_rate", f"error rate {rate:.2%} > {t.max_error_rate:.2%}"))
    if canary.p95_ms is not None and canary.p95_ms > t.max_p95_ms:
        out.append(("p95_ms", f"p95 {canary.p95_ms:.1f} ms > {t.max_p95_ms:g} ms"))
    if baseline is None or baseline.requests < t.min_requests:
        return out
    if (
        t.max_p95_ratio is not None
        and canary.p95_ms is not None
        and baseline.p95_ms is not None
        and canary.p95_ms > baseline.p95_ms * t.max_p95_ratio
    ):
        out.append(
            (
                "p95_ratio",
                f"p95 {canary.p95_ms:.1f} ms > baseline {baseline.p95_ms:.1f} ms "
                f"x {t.max_p95_ratio:g}",
            )
        )
    base_rate = baseline.error_rate or 0.0
    if t.max_error_rate_increase is not None and rate > base_rate + t.max_error_rate_increase:
        out.append(
            (
                "error_rate_increase",
                f"error rate {rate:.2%} > baseline {base_rate:.2%} "
                f"+ {t.max_error_rate_increase:.2%}",
            )
        )
    return out


def _not_enough(canary: Observation, baseline: Observation | None, t: Thresholds) -> list[str]:
    out = []
    if canary.requests < t.min_requests:
        out.append(f"not enough canary data: {canary.requests} < {t.min_requests} requests")
    elif canary.p95_ms is None:
        out.append("no canary latency data")
    relative = t.max_p95_ratio is not None or t.max_error_rate_increase is not None
    if relative:
        if baseline is None:
            out.append("relative thresholds need a baseline observation")
        elif baseline.requests < t.min_requests:
            out.append(f"not enough baseline data: {baseline.requests} < {t.min_requests} requests")
        elif t.max_p95_ratio is not None and baseline.p95_ms is None:
            out.append("no baseline latency data")
    return out


def _health(canary: Observation, baseline: Observation | None) -> str:
    text = f"{canary.requests} requests, error rate {canary.error_rate or 0.0:.2%}"
    if canary.p95_ms is not None:
        text += f", p95 {canary.p95_ms:.1f} ms"
    if baseline is not None and baseline.p95_ms is not None:
        text += f" (baseline p95 {baseline.p95_ms:.1f} ms)"
    return text


def _positive(value: object) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


def _fraction(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
