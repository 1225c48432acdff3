"""An in-process Cloud Monitoring ``MetricService`` that accepts writes, over real gRPC.

It answers ``CreateMetricDescriptor`` and ``CreateTimeSeries`` as Monitoring does for the
OpenTelemetry exporter and records every request, so a test checks what would reach Cloud
Monitoring: metric types, labels, value types and points.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import (
    MetricServiceGrpcTransport,
)
from google.protobuf import empty_pb2

from google.api import metric_pb2  # isort: skip

SERVICE = "google.monitoring.v3.MetricService"


class FakeMetricWrites:
    """Serve with :meth:`start`; read :attr:`series` and :attr:`descriptors`."""

    def __init__(self) -> None:
        self.series: list[monitoring_v3.TimeSeries] = []
        self.descriptors: list[metric_pb2.MetricDescriptor] = []
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.port = 0

    def start(self) -> FakeMetricWrites:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
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
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        return monitoring_v3.MetricServiceClient(
            transport=MetricServiceGrpcTransport(channel=channel)
        )

    def series_of(self, metric_type: str) -> list[monitoring_v3.TimeSeries]:
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
