"""An in-process Cloud Monitoring ``MetricService`` peer, served over real gRPC on 127.0.0.1.

It holds raw points per filter string and answers ``ListTimeSeries`` the way Monitoring does for
the aggregation the SLO monitor uses (``ALIGN_DELTA`` per series, ``REDUCE_SUM`` across series,
alignment periods ending at the interval's end, points in ``(start, end]``, newest first), so
tests check both the requests sent and the evaluation of what comes back. Every request is
recorded; failures can be scripted. It also accepts the writes of OpenTelemetry's Cloud Monitoring
exporter (``CreateMetricDescriptor``, ``CreateTimeSeries``) and keeps them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.api import metric_pb2
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)
from google.protobuf import empty_pb2

SERVICE = "google.monitoring.v3.MetricService"
#: The bucket layout of ``cloudfunctions.googleapis.com/function/execution_times`` (ns).
EXECUTION_TIMES_BUCKETS = {"num_finite_buckets": 64, "growth_factor": 1.4, "scale": 1e6}
#: An exponential layout in ms, as ``run.googleapis.com/request_latencies`` reports (1.4x growth).
REQUEST_LATENCIES_BUCKETS = {"num_finite_buckets": 64, "growth_factor": 1.4, "scale": 1.0}


@dataclass
class _Series:
    kind: str  # "count" or "distribution"
    points: list[tuple[float, Any]] = field(default_factory=list)
    buckets: dict[str, float] | None = None


def _normalize(filter_: str) -> str:
    return " ".join(filter_.split())


class FakeMetricService:
    """Serve with :meth:`start`; feed with :meth:`add_counts` / :meth:`add_samples`."""

    def __init__(self) -> None:
        self.requests: list[monitoring_v3.ListTimeSeriesRequest] = []
        self.series: list[monitoring_v3.TimeSeries] = []
        self.descriptors: list[metric_pb2.MetricDescriptor] = []
        self._series: dict[str, _Series] = {}
        self._lock = threading.Lock()
        self._failures: list[grpc.StatusCode] = []
        self._delay = 0.0
        self._server: grpc.Server | None = None
        self.port = 0

    # -- data -------------------------------------------------------------------------------

    def add_counts(self, filter_: str, points: list[tuple[float, int]]) -> None:
        """Count points ``(epoch seconds, delta)`` matching ``filter_``."""
        with self._lock:
            self._series.setdefault(_normalize(filter_), _Series("count")).points.extend(points)

    def add_samples(
        self,
        filter_: str,
        points: list[tuple[float, float]],
        buckets: dict[str, float] | None = None,
    ) -> None:
        """Distribution samples ``(epoch seconds, value in the metric's unit)``."""
        with self._lock:
            series = self._series.setdefault(
                _normalize(filter_),
                _Series("distribution", buckets=buckets or EXECUTION_TIMES_BUCKETS),
            )
            series.points.extend(points)

    def fail_next(self, *codes: grpc.StatusCode) -> None:
        """The next calls fail with these status codes, in order."""
        with self._lock:
            self._failures.extend(codes)

    def delay(self, seconds: float) -> None:
        self._delay = seconds

    # -- serving ----------------------------------------------------------------------------

    def start(self) -> FakeMetricService:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ListTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self._list_time_series,
                    request_deserializer=monitoring_v3.ListTimeSeriesRequest.deserialize,
                    response_serializer=monitoring_v3.ListTimeSeriesResponse.serialize,
                ),
                # What OpenTelemetry's Cloud Monitoring exporter writes (tests/telemetry).
                "CreateMetricDescriptor": grpc.unary_unary_rpc_method_handler(
                    self._create_descriptor,
                    request_deserializer=monitoring_v3.CreateMetricDescriptorRequest.deserialize,
                    response_serializer=metric_pb2.MetricDescriptor.SerializeToString,
                ),
                "CreateTimeSeries": grpc.unary_unary_rpc_method_handler(
                    self._create_time_series,
                    request_deserializer=monitoring_v3.CreateTimeSeriesRequest.deserialize,
                    response_serializer=empty_pb2.Empty.SerializeToString,
                ),
            },
        )
        server.add_generic_rpc_handlers((handler,))
        self.port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        self._server = server
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)

    def client(self) -> monitoring_v3.MetricServiceClient:
        """The real client, over gRPC to this fake."""
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        return monitoring_v3.MetricServiceClient(
            transport=MetricServiceGrpcTransport(channel=channel)
        )

    def series_of(self, metric_type: str) -> list[monitoring_v3.TimeSeries]:
        """The time series written so far whose metric type is ``metric_type``."""
        with self._lock:
            return [s for s in self.series if s.metric.type == metric_type]

    def _create_descriptor(
        self, request: monitoring_v3.CreateMetricDescriptorRequest, context: grpc.ServicerContext
    ) -> metric_pb2.MetricDescriptor:
        descriptor = monitoring_v3.CreateMetricDescriptorRequest.pb(request).metric_descriptor
        with self._lock:
            self.descriptors.append(descriptor)
        return descriptor

    def _create_time_series(
        self, request: monitoring_v3.CreateTimeSeriesRequest, context: grpc.ServicerContext
    ) -> empty_pb2.Empty:
        with self._lock:
            self.series.extend(request.time_series)
        return empty_pb2.Empty()

    def _list_time_series(
        self, request: monitoring_v3.ListTimeSeriesRequest, context: grpc.ServicerContext
    ) -> monitoring_v3.ListTimeSeriesResponse:
        with self._lock:
            self.requests.append(request)
            failure = self._failures.pop(0) if self._failures else None
            series = self._series.get(_normalize(request.filter))
            points = list(series.points) if series else []
        if self._delay:
            threading.Event().wait(self._delay)
        if failure is not None:
            context.abort(failure, f"scripted failure {failure.name}")
        agg = request.aggregation
        if (
            agg.per_series_aligner != monitoring_v3.Aggregation.Aligner.ALIGN_DELTA
            or agg.cross_series_reducer != monitoring_v3.Aggregation.Reducer.REDUCE_SUM
        ):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "fake supports ALIGN_DELTA+REDUCE_SUM")
        period = agg.alignment_period.total_seconds()
        if period < 60:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "alignment period must be >= 60s")
        start = request.interval.start_time.timestamp()
        end = request.interval.end_time.timestamp()
        if series is None or not points:
            return monitoring_v3.ListTimeSeriesResponse()
        out_points = []
        for period_end in _period_ends(start, end, period):
            chosen = [v for t, v in points if period_end - period < t <= period_end and t > start]
            if not chosen:
                continue
            interval = {"start_time": _ts(period_end - period), "end_time": _ts(period_end)}
            if series.kind == "count":
                value = {"int64_value": sum(chosen)}
            else:
                value = {"distribution_value": _distribution(chosen, series.buckets or {})}
            out_points.append({"interval": interval, "value": value})
        if not out_points:
            return monitoring_v3.ListTimeSeriesResponse()
        kind = "DELTA"
        ts = monitoring_v3.TimeSeries(
            metric={"type": request.filter.split('"')[1] if '"' in request.filter else "x"},
            metric_kind=kind,
            value_type="INT64" if series.kind == "count" else "DISTRIBUTION",
            points=out_points,
        )
        return monitoring_v3.ListTimeSeriesResponse(time_series=[ts])


def _period_ends(start: float, end: float, period: float) -> Iterator[float]:
    current = end
    while current > start:
        yield current
        current -= period


def _ts(epoch: float) -> dict[str, int]:
    seconds = int(epoch)
    return {"seconds": seconds, "nanos": int((epoch - seconds) * 1e9)}


def _distribution(values: list[float], buckets: dict[str, float]) -> dict[str, Any]:
    n = int(buckets["num_finite_buckets"])
    growth, scale = buckets["growth_factor"], buckets["scale"]
    bounds = [scale * growth**i for i in range(n + 1)]
    counts = [0] * (n + 2)
    for v in values:
        index = 0
        while index < len(bounds) and v >= bounds[index]:
            index += 1
        counts[index] += 1
    while counts and counts[-1] == 0:  # Monitoring omits trailing empty buckets
        counts.pop()
    mean = sum(values) / len(values)
    return {
        "count": len(values),
        "mean": mean,
        "bucket_options": {"exponential_buckets": {
            "num_finite_buckets": n, "growth_factor": growth, "scale": scale}},
        "bucket_counts": counts,
    }  # fmt: skip
