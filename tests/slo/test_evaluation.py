"""Evaluation, burn rates, histograms and the compute pipeline (pure, plus the SQLite source)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.slo.backends.local import LocalBackend, percentile
from shared.slo.burn_rate import burn_rate, fired_rules, severity_of
from shared.slo.compute import compute
from shared.slo.distribution import Histogram, exponential_bounds, linear_bounds
from shared.slo.errors import SloError
from shared.slo.evaluation import evaluate
from shared.slo.local_store import LocalStore
from shared.slo.measurement import Measurement
from shared.slo.window import Window, aligned_end
from tests.slo.helpers import TICK, latency_slo, local_config, ratio_slo, traffic

RATIO = local_config(ratio_slo()).slos[0]
LATENCY = local_config(latency_slo()).slos[0]


def test_ratio_objective_is_strict_and_exact() -> None:
    # 99.0% good against "error rate < 1%" is a violation; float math would call it a pass.
    assert evaluate(RATIO, Measurement(total=100, bad=1)).status == "violation"
    assert evaluate(RATIO, Measurement(total=1000, bad=9)).status == "ok"
    verdict = evaluate(RATIO, Measurement(total=200, bad=5))
    assert verdict.status == "violation"
    assert verdict.value == pytest.approx(0.975)


def test_latency_objective_is_strict() -> None:
    assert evaluate(LATENCY, Measurement(10, 0, value=899.9)).status == "ok"
    assert evaluate(LATENCY, Measurement(10, 1, value=900.0)).status == "violation"


def test_no_data_is_its_own_outcome() -> None:
    assert evaluate(RATIO, Measurement(0, 0)).status == "no_data"
    assert evaluate(LATENCY, Measurement(0, 0)).status == "no_data"
    assert burn_rate(RATIO, Measurement(0, 0)) is None


def test_burn_rate_is_bad_fraction_over_budget() -> None:
    assert burn_rate(RATIO, Measurement(1000, 10)) == pytest.approx(1.0)
    assert burn_rate(RATIO, Measurement(1000, 144)) == pytest.approx(14.4)
    # p95 latency: 5% of requests may be slow; 10% slow burns twice as fast.
    assert burn_rate(LATENCY, Measurement(100, 10, value=1000)) == pytest.approx(2.0)


def test_multiwindow_rules_need_both_windows() -> None:
    burns = {300: 20.0, 1800: 7.0, 3600: 15.0, 21600: 2.0, 259200: 0.8}
    fired = fired_rules(RATIO, burns)
    assert [f.rule.name for f in fired] == ["fast-burn"]
    # A short spike alone (5m hot, 1h cool) pages nobody; a slow leak opens a ticket.
    assert fired_rules(RATIO, {**burns, 3600: 3.0}) == ()
    leak = fired_rules(RATIO, {300: 0.5, 1800: 0.5, 3600: 0.5, 21600: 1.2, 259200: 1.1})
    assert [(f.rule.name, f.rule.severity) for f in leak] == [("budget-leak", "ticket")]
    assert severity_of(fired, violated=False) == "page"
    assert severity_of(leak, violated=True) == "ticket"
    assert severity_of((), violated=True) == "warning"
    assert severity_of((), violated=False) is None
    assert fired_rules(RATIO, {**burns, 300: None}) == ()


def test_aligned_windows() -> None:
    assert aligned_end(TICK + 0.4, 300) == TICK
    assert aligned_end(TICK + 299.9, 300) == TICK
    window = Window.ending_at(TICK, 300)
    assert window.key() == "20261126T120500Z-5m"
    assert window.label == "5m"


def test_histogram_percentile_and_threshold_count() -> None:
    # Buckets: (-inf,0) [0,100) [100,200) ... [900,1000) [1000,inf)
    h = Histogram(linear_bounds(10, 100, 0), (0, 50, 0, 0, 0, 0, 0, 0, 0, 0, 40, 10))
    assert h.total == 100
    assert h.percentile(50) == pytest.approx(100.0)
    assert h.percentile(95) == pytest.approx(1000.0)  # falls in overflow: its lower edge
    assert h.percentile(80) == pytest.approx(975.0)
    assert h.count_at_or_above(900) == pytest.approx(50)
    assert h.count_at_or_above(950) == pytest.approx(30)
    assert Histogram((), ()).percentile(50) is None
    merged = h.merged(Histogram(h.bounds, (0, 1)))
    assert merged.counts[1] == 51
    with pytest.raises(ValueError, match="different bucket layouts"):
        h.merged(Histogram((1.0,), (1,)))


@given(st.lists(st.floats(1.0, 1e5), min_size=1, max_size=300), st.sampled_from([50, 90, 95, 99]))
def test_histogram_percentile_lies_in_the_true_percentiles_bucket(
    values: list[float], q: int
) -> None:
    bounds = exponential_bounds(40, 1.4, 1.0)
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[sum(1 for b in bounds if v >= b)] += 1
    h = Histogram(bounds, tuple(counts))
    estimate = h.percentile(q)
    assert estimate is not None
    ordered = sorted(values)
    true_rank = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    true_value = ordered[true_rank]
    index = sum(1 for b in bounds if true_value >= b)
    lower, upper = h.bucket(index)
    assert lower <= estimate <= upper or math.isclose(estimate, lower)


def test_sample_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_compute_pipeline_over_the_local_store(local_store: LocalStore) -> None:
    config = local_config(ratio_slo(), latency_slo(), ratio_slo("quiet", function="idle"))
    backend = LocalBackend(local_store)
    # Last 5 minutes: 200 requests, 4 errors (2%), 20 slow (10%). The hour before: clean.
    traffic(local_store, "api", start=TICK - 3600, end=TICK - 300, count=1100)
    traffic(local_store, "api", start=TICK - 300, end=TICK, count=200, errors=4, slow=20)
    # Outside every window: must not count.
    traffic(local_store, "api", start=TICK, end=TICK + 60, count=50, errors=50)
    results = {r.slo.name: r for r in compute(config.slos, lambda _: backend, TICK, max_workers=4)}

    errors = results["api-errors"]
    assert (errors.status, errors.total) == ("violation", 200)
    assert errors.value == pytest.approx(0.98)
    assert errors.burn_rates["5m"] == pytest.approx(2.0)
    assert errors.burn_rates["1h"] == pytest.approx(4 / 1300 / 0.01)
    assert errors.fired == ()
    assert errors.severity == "warning"
    assert errors.breached

    latency = results["api-latency"]
    assert latency.status == "violation"
    assert latency.value == pytest.approx(2000.0)
    assert latency.burn_rates["5m"] == pytest.approx(2.0)

    quiet = results["quiet"]
    assert quiet.status == "no_data"
    assert not quiet.breached
    assert quiet.burn_rates == {"5m": None, "30m": None, "1h": None, "6h": None, "3d": None}
    assert backend.calls == 15  # 3 SLOs x 5 windows


def test_fast_burn_pages(local_store: LocalStore) -> None:
    config = local_config(ratio_slo())
    traffic(local_store, "api", start=TICK - 3600, end=TICK, count=1200, errors=240)
    (result,) = compute(config.slos, lambda _: LocalBackend(local_store), TICK)
    assert result.status == "violation"
    # Only an hour of history: every window burns at 20x, so all three rules fire.
    assert [f.rule.name for f in result.fired] == ["fast-burn", "slow-burn", "budget-leak"]
    assert result.severity == "page"
    assert result.to_json()["alerts"][0]["condition"] == "14.4x over 1h confirmed by 5m"


def test_a_failing_source_is_reported_not_raised() -> None:
    config = local_config(ratio_slo())

    def broken(name: str) -> LocalBackend:
        raise SloError(f"backend {name} unavailable")

    (result,) = compute(config.slos, broken, TICK)
    assert result.status == "error"
    assert result.errors[0] == "5m: backend local unavailable"
    assert not result.breached
