"""The suite's OpenTelemetry capture: one in-memory span exporter and metric reader per session.

OpenTelemetry's global providers can be set once per process, so the session installs them
before any test (``tests/conftest.py``); tests read and clear what was captured here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

SPANS = InMemorySpanExporter()
METRICS = InMemoryMetricReader()


def finished_spans(trace_id: int | None = None) -> list[ReadableSpan]:
    """Spans ended so far (of one trace if given), oldest first."""
    spans = list(SPANS.get_finished_spans())
    if trace_id is not None:
        spans = [s for s in spans if s.context is not None and s.context.trace_id == trace_id]
    return spans


def metric_points(name: str) -> Iterator[tuple[dict[str, Any], Any]]:
    """``(attributes, point)`` of every data point of the metric called ``name`` (cumulative)."""
    data = METRICS.get_metrics_data()
    if data is None:
        return
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        yield dict(point.attributes or {}), point


def counter_value(name: str, **attributes: Any) -> float:
    """The summed value of ``name``'s points whose attributes include ``attributes``."""
    total = 0.0
    for attrs, point in metric_points(name):
        if all(attrs.get(k) == v for k, v in attributes.items()):
            total += point.value
    return total
