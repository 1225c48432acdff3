"""shared.canary.compare: the statistical tests against scipy, and the gate's three outcomes."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from shared.canary.compare import (
    CohortSample,
    ComparisonPolicy,
    compare_errors,
    compare_latency,
    fisher_exact_greater,
    mann_whitney_greater,
    quantile,
)
from shared.canary.errors import CanaryConfigError

samples = st.lists(st.integers(0, 40).map(lambda v: v / 10), min_size=20, max_size=80)


@settings(max_examples=60, deadline=None)
@given(xs=samples, ys=samples)
def test_mann_whitney_matches_scipy(xs: list[float], ys: list[float]) -> None:
    expected = stats.mannwhitneyu(xs, ys, alternative="greater", method="asymptotic").pvalue
    assert mann_whitney_greater(xs, ys) == pytest.approx(expected, abs=1e-9)


@settings(max_examples=80, deadline=None)
@given(
    a=st.integers(1, 200),
    b=st.integers(1, 200),
    fa=st.floats(0, 1),
    fb=st.floats(0, 1),
)
def test_fisher_matches_scipy(a: int, b: int, fa: float, fb: float) -> None:
    errors_a, errors_b = round(a * fa), round(b * fb)
    table = [[errors_a, a - errors_a], [errors_b, b - errors_b]]
    expected = stats.fisher_exact(table, alternative="greater").pvalue
    assert fisher_exact_greater(errors_a, a, errors_b, b) == pytest.approx(expected, abs=1e-9)


def test_quantile_is_numpy_linear() -> None:
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([5.0], 0.95) == 5.0
    assert quantile(list(range(101)), 0.95) == 95
    with pytest.raises(ValueError):
        quantile([], 0.5)


def _cohort(rng: random.Random, n: int, mean: float, error_rate: float) -> CohortSample:
    latencies = tuple(rng.expovariate(1 / mean) for _ in range(n))
    return CohortSample(latencies, sum(rng.random() < error_rate for _ in range(n)))


def test_a_clearly_slower_candidate_fails_latency() -> None:
    rng = random.Random(7)
    stable, candidate = _cohort(rng, 200, 0.1, 0), _cohort(rng, 60, 0.4, 0)
    verdict = compare_latency(candidate, stable, ComparisonPolicy())
    assert verdict.outcome == "fail"
    assert verdict.p_value is not None
    assert verdict.p_value < 0.001
    assert "Mann-Whitney" in verdict.reason


def test_a_significant_but_small_shift_passes_within_tolerance() -> None:
    stable = CohortSample(tuple(0.100 + i * 1e-5 for i in range(500)), 0)
    candidate = CohortSample(tuple(0.102 + i * 1e-5 for i in range(500)), 0)
    verdict = compare_latency(candidate, stable, ComparisonPolicy(latency_tolerance=0.2))
    assert verdict.p_value is not None
    assert verdict.p_value < 0.05
    assert verdict.outcome == "pass"


def test_same_distribution_passes() -> None:
    rng = random.Random(3)
    stable, candidate = _cohort(rng, 300, 0.1, 0.01), _cohort(rng, 100, 0.1, 0.01)
    policy = ComparisonPolicy()
    assert compare_latency(candidate, stable, policy).outcome == "pass"
    assert compare_errors(candidate, stable, policy).outcome == "pass"


def test_a_failing_candidate_fails_errors_with_evidence() -> None:
    stable = CohortSample((0.1,) * 400, 2)
    candidate = CohortSample((0.1,) * 60, 12)
    verdict = compare_errors(candidate, stable, ComparisonPolicy())
    assert verdict.outcome == "fail"
    assert "candidate errors 12/60 (20.0%) vs stable 2/400 (0.5%)" in verdict.reason


def test_too_few_samples_is_inconclusive_never_pass() -> None:
    stable = CohortSample((0.1,) * 400, 0)
    candidate = CohortSample((9.0,) * 10, 10)
    policy = ComparisonPolicy(min_samples=50)
    for verdict in (
        compare_latency(candidate, stable, policy),
        compare_errors(candidate, stable, policy),
    ):
        assert verdict.outcome == "inconclusive"
        assert "candidate 10, stable 400 (need 50 each)" in verdict.reason


def test_bad_policy_and_sample_name_every_problem() -> None:
    with pytest.raises(CanaryConfigError) as caught:
        ComparisonPolicy(min_samples=1, alpha=0.7, latency_tolerance=-1, error_rate_tolerance=2)
    message = str(caught.value)
    for field in ("min_samples", "alpha", "latency_tolerance", "error_rate_tolerance"):
        assert field in message
    with pytest.raises(CanaryConfigError, match="errors must be between 0 and the 2 requests"):
        CohortSample((0.1, 0.2), 3)
