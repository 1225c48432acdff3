"""The Cloud Monitoring source: the real client over gRPC against an in-process MetricService."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest
from google.cloud import monitoring_v3

from shared.slo.backends.cloud_monitoring import (
    CloudMonitoringBackend,
    DistributionQuery,
    RatioQuery,
    parse_query,
)
from shared.slo.compute import compute
from shared.slo.config import MonitorConfig, load_config, parse_config
from tests.slo.fake_monitoring import REQUEST_LATENCIES_BUCKETS, FakeMetricService
from tests.slo.helpers import TICK

ROOT = Path(__file__).resolve().parents[2]

# The shipped file's filters (Cloud Run's metrics of the graph-ask service, and the insights
# deliveries metric graph_ask emits), so the fake answers exactly what production will query.
SHIPPED = {slo.name: slo.query for slo in load_config(ROOT / "config" / "slos.yaml").slos}
_ERRORS = SHIPPED["graphAsk-errors"]
_DELIVERIES = SHIPPED["insights-delivery"]
_LATENCY = SHIPPED["graphAsk-latency"]
assert isinstance(_ERRORS, RatioQuery)
assert isinstance(_DELIVERIES, RatioQuery)
assert isinstance(_LATENCY, DistributionQuery)
GOOD, VALID = _ERRORS.filter_good, str(_ERRORS.filter_valid)
DELIVERED = _DELIVERIES.filter_good
BAD = str(_DELIVERIES.filter_valid) + ' AND metric.labels.outcome = "failed"'
TIMES = _LATENCY.filter
Aligner = monitoring_v3.Aggregation.Aligner
Reducer = monitoring_v3.Aggregation.Reducer


def config(policy: list[dict[str, Any]] | None = None) -> MonitorConfig:
    policies = {"default": policy} if policy is not None else None
    doc: dict[str, Any] = {
        "backends": {"cloud_monitoring": {"project_id": "demo-project"}},
        "slos": [
            {"name": "graphAsk-errors", "backend": "cloud_monitoring", "method": "good_bad_ratio",
             "goal": 0.99, "service_level_indicator": {"filter_good": GOOD, "filter_valid": VALID}},
            {"name": "insights-delivery", "backend": "cloud_monitoring",
             "method": "good_bad_ratio", "goal": 0.99,
             "service_level_indicator": {"filter_good": DELIVERED, "filter_bad": BAD}},
            {"name": "graphAsk-latency", "backend": "cloud_monitoring",
             "method": "latency_percentile", "percentile": 95, "threshold_ms": 900,
             "service_level_indicator": {"filter": TIMES, "unit": _LATENCY.unit}},
        ],
    }  # fmt: skip
    if policies:
        doc["error_budget_policies"] = policies
    return parse_config(doc)


def spread(start: float, end: float, n: int) -> list[float]:
    step = (end - start) / n
    return [start + step * (i + 1) for i in range(n)]  # (start, end]: Monitoring's interval


def feed(fake: FakeMetricService) -> None:
    # Last 5 min: 500 executions, 490 ok (2% errors); the 55 min before: 5500, all ok.
    fake.add_counts(VALID, [(t, 1) for t in spread(TICK - 300, TICK, 500)])
    fake.add_counts(GOOD, [(t, 1) for t in spread(TICK - 300, TICK, 490)])
    fake.add_counts(VALID, [(t, 1) for t in spread(TICK - 3600, TICK - 300, 5500)])
    fake.add_counts(GOOD, [(t, 1) for t in spread(TICK - 3600, TICK - 300, 5500)])
    fake.add_counts(DELIVERED, [(TICK - 10, 999)])
    fake.add_counts(BAD, [(TICK - 20, 1)])
    # Latency: 90 fast requests at 200 ms and 10 slow at 1.5 s (in ms) in the last 5 minutes.
    times = spread(TICK - 300, TICK, 100)
    fake.add_samples(
        TIMES,
        [(t, 200.0 if i % 10 else 1500.0) for i, t in enumerate(times)],
        REQUEST_LATENCIES_BUCKETS,
    )


def backend(fake: FakeMetricService) -> CloudMonitoringBackend:
    return CloudMonitoringBackend(fake.client(), "demo-project", timeout=5.0, retry=None)


def test_requests_are_server_aggregated_one_per_filter_and_window(
    fake_monitoring: FakeMetricService,
) -> None:
    feed(fake_monitoring)
    source = backend(fake_monitoring)
    cfg = config()
    compute(cfg.slos, lambda _: source, TICK)
    windows = (300, 1800, 3600, 21600, 259200)
    # 2 filters per ratio SLI, 1 per distribution, each over 5 windows.
    assert source.calls == len(fake_monitoring.requests) == (2 + 2 + 1) * len(windows)
    seen = set()
    for request in fake_monitoring.requests:
        assert request.name == "projects/demo-project"
        end = request.interval.end_time.timestamp()
        length = end - request.interval.start_time.timestamp()
        assert end == TICK
        agg = request.aggregation
        assert agg.alignment_period.total_seconds() == length
        assert agg.per_series_aligner == Aligner.ALIGN_DELTA
        assert agg.cross_series_reducer == Reducer.REDUCE_SUM
        assert list(agg.group_by_fields) == []
        seen.add((request.filter, int(length)))
    expected_filters = {" ".join(f.split()) for f in (GOOD, VALID, BAD, DELIVERED, TIMES)}
    assert seen == {(f, w) for f in expected_filters for w in windows}


def test_evaluation_of_what_monitoring_returns(fake_monitoring: FakeMetricService) -> None:
    feed(fake_monitoring)
    source = backend(fake_monitoring)
    results = {r.slo.name: r for r in compute(config().slos, lambda _: source, TICK)}

    errors = results["graphAsk-errors"]
    assert (errors.status, errors.total) == ("violation", 500)
    assert errors.value == pytest.approx(0.98)
    assert errors.burn_rates["5m"] == pytest.approx(2.0)
    assert errors.burn_rates["1h"] == pytest.approx(10 / 6000 / 0.01)

    delivery = results["insights-delivery"]
    assert (delivery.status, delivery.total) == ("ok", 1000)
    assert delivery.value == pytest.approx(0.999)

    latency = results["graphAsk-latency"]
    assert latency.status == "violation"
    assert latency.total == 100
    # 10% of requests at 1.5 s: p95 lands inside the bucket holding 1.5 s (1.4x growth buckets).
    assert latency.value is not None
    assert 1.5e3 / 1.4 <= latency.value <= 1.5e3 * 1.4
    assert latency.burn_rates["5m"] == pytest.approx(2.0, rel=0.05)
    assert latency.burn_rates["6h"] == latency.burn_rates["5m"]  # no older traffic


def test_no_traffic_is_no_data(fake_monitoring: FakeMetricService) -> None:
    source = backend(fake_monitoring)
    results = compute(config().slos, lambda _: source, TICK)
    assert {r.status for r in results} == {"no_data"}


def test_unavailable_is_a_transient_source_error(fake_monitoring: FakeMetricService) -> None:
    feed(fake_monitoring)
    fake_monitoring.fail_next(grpc.StatusCode.UNAVAILABLE)
    source = backend(fake_monitoring)
    cfg = config(policy=[])
    results = compute(cfg.slos, lambda _: source, TICK, max_workers=1)
    failed = results[0]
    assert failed.status == "error"
    assert failed.transient_error
    assert "ListTimeSeries failed" in failed.errors[0]
    assert "scripted failure UNAVAILABLE" in failed.errors[0]
    # The other SLIs are still measured and judged.
    assert [r.status for r in results[1:]] == ["ok", "violation"]


def test_invalid_argument_is_permanent(fake_monitoring: FakeMetricService) -> None:
    fake_monitoring.fail_next(*[grpc.StatusCode.INVALID_ARGUMENT] * 2)  # first call of each ratio
    source = backend(fake_monitoring)
    results = compute(config(policy=[]).slos, lambda _: source, TICK, max_workers=1)
    assert [r.status for r in results] == ["error", "error", "no_data"]
    assert not results[0].transient_error


def test_monitoring_query_validation() -> None:
    assert parse_query("good_bad_ratio", {"filter_good": "x", "filter_valid": "y", "f": 1})[1] == [
        "f: unknown field for this method; allowed: filter_good, filter_valid, filter_bad"
    ]
    assert parse_query("latency_percentile", {"filter": "  "})[1] == [
        "filter: required, a Cloud Monitoring filter string; got '  '"
    ]
    query, problems = parse_query("good_bad_ratio", {"filter_good": "a\n  b", "filter_bad": "c"})
    assert problems == []
    assert query is not None
    assert query.filter_good == "a b"  # folded YAML whitespace is normalized
