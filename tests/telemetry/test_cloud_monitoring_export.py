"""The real Cloud Monitoring exporter, over gRPC to an in-process fake: what production writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.exporter.cloud_monitoring import CloudMonitoringMetricsExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from shared.resilience import events
from shared.resilience.telemetry import TelemetryHook
from tests.slo.fake_monitoring import FakeMetricService


@pytest.fixture
def monitoring() -> Iterator[FakeMetricService]:
    fake = FakeMetricService().start()
    yield fake
    fake.stop()


@pytest.fixture
def provider(monitoring: FakeMetricService) -> Iterator[MeterProvider]:
    exporter = CloudMonitoringMetricsExporter(project_id="demo-proj", client=monitoring.client())
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(
        resource=Resource.create({"service.name": "graph-ask"}), metric_readers=[reader]
    )
    yield meter_provider
    meter_provider.shutdown()


def test_counters_and_histograms_reach_monitoring_as_workload_metrics(
    monitoring: FakeMetricService, provider: MeterProvider
) -> None:
    meter = provider.get_meter("tests")
    deliveries = meter.create_counter("insights/deliveries")
    latency = meter.create_histogram("http.server.request.duration", unit="s")
    deliveries.add(3, {"outcome": "delivered"})
    deliveries.add(1, {"outcome": "failed"})
    for seconds in (0.05, 0.2, 1.5):
        latency.record(seconds, {"function": "graphAsk", "http.response.status_code": 200})
    assert provider.force_flush(10_000)

    delivered = {
        s.metric.labels["outcome"]: s.points[0].value.int64_value
        for s in monitoring.series_of("workload.googleapis.com/insights/deliveries")
    }
    assert delivered == {"delivered": 3, "failed": 1}
    (histogram,) = monitoring.series_of("workload.googleapis.com/http.server.request.duration")
    distribution = histogram.points[0].value.distribution_value
    assert distribution.count == 3
    assert distribution.mean == pytest.approx((0.05 + 0.2 + 1.5) / 3)
    assert histogram.metric.labels["function"] == "graphAsk"
    assert histogram.metric.labels["http_response_status_code"] == "200"
    types = {d.type for d in monitoring.descriptors}
    assert "workload.googleapis.com/insights/deliveries" in types


def test_the_resilience_instruments_export_through_the_same_path(
    monitoring: FakeMetricService, provider: MeterProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.obs import telemetry
    from shared.resilience import telemetry as resilience_telemetry
    from shared.resilience.circuit import breaker

    monkeypatch.setattr(telemetry, "meter", provider.get_meter)
    monkeypatch.setattr(resilience_telemetry, "_gauge_installed", False)
    breaker("graph", fail_max=1).open()
    hook = TelemetryHook()
    hook(events.CacheAccessed("graph", "stale"))
    hook(events.FallbackCompleted("local-llm", fallback_used=True, attempts=2, ok=True))
    assert provider.force_flush(10_000)
    (cache,) = monitoring.series_of("workload.googleapis.com/resilience.cache.accesses")
    assert dict(cache.metric.labels) == {"cache": "graph", "outcome": "stale"}
    (state,) = monitoring.series_of("workload.googleapis.com/resilience.breaker.state")
    assert state.metric.labels["breaker"] == "graph"
    assert state.points[0].value.int64_value == 2
    (answers,) = monitoring.series_of("workload.googleapis.com/resilience.fallback.answers")
    assert answers.metric.labels["model"] == "local-llm"
