"""An OpenTelemetry metric exporter into the local store: the local stack's Cloud Monitoring.

Deployed, the functions' metrics reach Cloud Monitoring through the Cloud Monitoring exporter and
the SLO monitor reads them there (``workload.googleapis.com/insights/deliveries``). Locally, the
same instruments export here, into the ``metric_points`` table of ``LOCAL_METRICS_DB``, and the
``local`` SLI backend reads them (``service_level_indicator: {metric: insights/deliveries}``): the
monitor reads what the functions emit through the same SDK pipe in both places.

The local stack names the exporter in the environment, as it names the request store:
``TELEMETRY_METRIC_SINK=shared.slo.local_metrics:exporter_from_env`` (see
:mod:`shared.obs.telemetry`). Counters and histograms are exported as deltas, so each point is the
increase over its own interval and a window's total is the sum of the points ending in it, across
every process; gauges and up-down counters keep their current value.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    Sum,
)
from opentelemetry.sdk.metrics.export import Histogram as HistogramData

from shared.settings import Env
from shared.slo.local_store import AttributeValue, LocalStore, MetricKind, MetricPoint

__all__ = ["LocalMetricExporter", "exporter_from_env", "points"]

logger = logging.getLogger("shared.slo.local_metrics")

_NANOS = 1e9

_TEMPORALITY: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
    ObservableCounter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}


class LocalMetricExporter(MetricExporter):
    """Writes every export's points into a :class:`LocalStore`; a failed write is logged and
    reported to the SDK as a failed export (the points are dropped, as a network exporter's)."""

    def __init__(self, store: LocalStore) -> None:
        super().__init__(preferred_temporality=_TEMPORALITY)
        self.store = store

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            self.store.append_points(points(metrics_data))
        except sqlite3.Error as exc:
            logger.warning("could not store metric points in %s: %s", self.store.path, exc)
            return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True  # every export is written before it returns

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.store.close()


def points(metrics_data: MetricsData) -> Iterator[MetricPoint]:
    """The points of one export as store rows (the service from the resource's name)."""
    for resource_metrics in metrics_data.resource_metrics:
        service = str(resource_metrics.resource.attributes.get("service.name", ""))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                yield from _metric_points(metric.name, metric.data, service)


def _metric_points(name: str, data: Any, service: str) -> Iterator[MetricPoint]:
    if isinstance(data, Sum):
        delta = data.aggregation_temporality == AggregationTemporality.DELTA
        kind: MetricKind = "counter" if data.is_monotonic and delta else "gauge"
        for number in data.data_points:
            yield MetricPoint(name, kind, service, _attributes(number.attributes),
                              _seconds(number.start_time_unix_nano),
                              _seconds(number.time_unix_nano), float(number.value))  # fmt: skip
    elif isinstance(data, Gauge):
        for number in data.data_points:
            at = _seconds(number.time_unix_nano)
            yield MetricPoint(name, "gauge", service, _attributes(number.attributes), at, at,
                              float(number.value))  # fmt: skip
    elif isinstance(data, HistogramData):
        for bucketed in data.data_points:
            histogram = {
                "sum": bucketed.sum,
                "bounds": list(bucketed.explicit_bounds),
                "bucket_counts": list(bucketed.bucket_counts),
            }
            yield MetricPoint(name, "histogram", service, _attributes(bucketed.attributes),
                              _seconds(bucketed.start_time_unix_nano),
                              _seconds(bucketed.time_unix_nano), float(bucketed.count),
                              histogram)  # fmt: skip
    # Exponential histograms: no instrument here asks for them.


def _attributes(attributes: Mapping[str, object] | None) -> dict[str, AttributeValue]:
    # Sequences (allowed by the API) are kept as text: a filter compares them as text anyway.
    return {
        key: value if isinstance(value, str | bool | int | float) else str(value)
        for key, value in (attributes or {}).items()
    }


def _seconds(unix_nano: int | None) -> float:
    return (unix_nano or 0) / _NANOS


def exporter_from_env() -> LocalMetricExporter | None:
    """An exporter into ``LOCAL_METRICS_DB``'s store, or None when the variable is unset."""
    path = Env().text("LOCAL_METRICS_DB")
    return LocalMetricExporter(LocalStore(path)) if path else None
