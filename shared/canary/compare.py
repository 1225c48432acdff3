"""Candidate versus stable, as Kayenta and Flagger judge a canary: a test, not a raw threshold.

Two comparisons over one window, each answering ``pass``, ``fail`` or ``inconclusive``:

* **latency**: the one-sided Mann-Whitney U test (is the candidate's latency distribution shifted
  above the stable one's?) at significance ``alpha``, and only a failure when the shift matters:
  the candidate's p95 must also exceed the stable p95 by more than ``latency_tolerance`` (a
  fraction). Kayenta's "effect size" guards against failing on a significant but harmless 2 ms.
* **errors**: the one-sided Fisher exact test on the 2x2 table of errors and successes (is the
  candidate's error rate higher?), failing only when the candidate's rate also exceeds the
  stable rate by more than ``error_rate_tolerance`` (absolute).

Fewer than ``min_samples`` requests in either cohort is ``inconclusive``: the gate then holds,
never advances. Latencies are seconds; rates are fractions. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias

from shared.canary.errors import CanaryConfigError

Outcome: TypeAlias = Literal["pass", "fail", "inconclusive"]
DEFAULT_ALPHA: Final = 0.05


@dataclass(frozen=True, slots=True)
class CohortSample:
    """One cohort's requests in the window: latencies (seconds) of all and the error count."""

    latencies: tuple[float, ...]
    errors: int

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.errors <= len(self.latencies):
            raise CanaryConfigError(
                f"errors must be between 0 and the {len(self.latencies)} requests, "
                f"got {self.errors}"
            )


@dataclass(frozen=True, slots=True)
class ComparisonPolicy:
    """How strict the comparison is; validated on construction."""

    min_samples: int = 50
    alpha: float = DEFAULT_ALPHA
    latency_tolerance: float = 0.2
    error_rate_tolerance: float = 0.01

    def __post_init__(self) -> None:
        problems = []
        if isinstance(self.min_samples, bool) or not 2 <= self.min_samples <= 1_000_000:
            problems.append(
                f"min_samples must be an integer from 2 to 1000000: {self.min_samples!r}"
            )
        if not 0 < self.alpha < 0.5:
            problems.append(f"alpha must be a number in (0, 0.5): {self.alpha!r}")
        if not 0 <= self.latency_tolerance <= 10:
            problems.append(f"latency_tolerance must be from 0 to 10: {self.latency_tolerance!r}")
        if not 0 <= self.error_rate_tolerance <= 1:
            problems.append(
                f"error_rate_tolerance must be from 0 to 1: {self.error_rate_tolerance!r}"
            )
        if problems:
            raise CanaryConfigError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class MetricVerdict:
    """One comparison's outcome with its evidence (for the record and the Slack alert)."""

    metric: Literal["latency", "errors"]
    outcome: Outcome
    p_value: float | None
    candidate: float
    stable: float
    reason: str


def compare_latency(
    candidate: CohortSample, stable: CohortSample, policy: ComparisonPolicy
) -> MetricVerdict:
    """Is the candidate slower than stable, significantly and by more than the tolerance?"""
    if min(candidate.requests, stable.requests) < policy.min_samples:
        return _too_few("latency", candidate, stable, policy)
    cand_p95 = quantile(candidate.latencies, 0.95)
    stable_p95 = quantile(stable.latencies, 0.95)
    p_value = mann_whitney_greater(candidate.latencies, stable.latencies)
    limit = stable_p95 * (1 + policy.latency_tolerance)
    if p_value < policy.alpha and cand_p95 > limit:
        reason = (
            f"candidate p95 {cand_p95 * 1000:.0f} ms > stable p95 {stable_p95 * 1000:.0f} ms "
            f"x {1 + policy.latency_tolerance:g} (Mann-Whitney p={p_value:.2g})"
        )
        return MetricVerdict("latency", "fail", p_value, cand_p95, stable_p95, reason)
    reason = (
        f"candidate p95 {cand_p95 * 1000:.0f} ms vs stable {stable_p95 * 1000:.0f} ms "
        f"(Mann-Whitney p={p_value:.2g})"
    )
    return MetricVerdict("latency", "pass", p_value, cand_p95, stable_p95, reason)


def compare_errors(
    candidate: CohortSample, stable: CohortSample, policy: ComparisonPolicy
) -> MetricVerdict:
    """Does the candidate fail more often than stable, significantly and beyond the tolerance?"""
    if min(candidate.requests, stable.requests) < policy.min_samples:
        return _too_few("errors", candidate, stable, policy)
    p_value = fisher_exact_greater(
        candidate.errors, candidate.requests, stable.errors, stable.requests
    )
    excess = candidate.error_rate - stable.error_rate
    evidence = (
        f"candidate errors {candidate.errors}/{candidate.requests} "
        f"({candidate.error_rate:.1%}) vs stable {stable.errors}/{stable.requests} "
        f"({stable.error_rate:.1%}), Fisher p={p_value:.2g}"
    )
    outcome: Outcome = (
        "fail" if p_value < policy.alpha and excess > policy.error_rate_tolerance else "pass"
    )
    return MetricVerdict(
        "errors", outcome, p_value, candidate.error_rate, stable.error_rate, evidence
    )


def _too_few(
    metric: Literal["latency", "errors"],
    candidate: CohortSample,
    stable: CohortSample,
    policy: ComparisonPolicy,
) -> MetricVerdict:
    reason = (
        f"too few requests to compare: candidate {candidate.requests}, stable "
        f"{stable.requests} (need {policy.min_samples} each)"
    )
    return MetricVerdict(metric, "inconclusive", None, float("nan"), float("nan"), reason)


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("quantile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mann_whitney_greater(xs: Sequence[float], ys: Sequence[float]) -> float:
    """One-sided p-value that ``xs`` tends to be greater than ``ys`` (normal approximation with
    tie and continuity corrections; accurate for the sample sizes a gate waits for, >= 20)."""
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney needs two non-empty samples")
    ranked = sorted([(v, 0) for v in xs] + [(v, 1) for v in ys])
    rank_sum_x = 0.0
    tie_term = 0.0
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        average_rank = (i + j) / 2 + 1
        tied = j - i + 1
        tie_term += tied**3 - tied
        rank_sum_x += average_rank * sum(1 for k in range(i, j + 1) if ranked[k][1] == 0)
        i = j + 1
    u = rank_sum_x - n1 * (n1 + 1) / 2
    n = n1 + n2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        return 1.0  # every value equal: no evidence of a shift
    z = (u - mean - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def fisher_exact_greater(errors_a: int, total_a: int, errors_b: int, total_b: int) -> float:
    """One-sided Fisher exact p-value that group a's error rate is greater than group b's."""
    if not (0 <= errors_a <= total_a and 0 <= errors_b <= total_b):
        raise ValueError("errors must be between 0 and the group's total")
    errors = errors_a + errors_b
    total = total_a + total_b
    if errors == 0 or errors == total:
        return 1.0
    log_denominator = _log_comb(total, errors)
    upper = min(errors, total_a)
    p = 0.0
    for k in range(errors_a, upper + 1):
        p += math.exp(_log_comb(total_a, k) + _log_comb(total_b, errors - k) - log_denominator)
    return min(1.0, p)


def _log_comb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
