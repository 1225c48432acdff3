"""OpenTelemetry for every function: providers started on first use, exporters chosen by setting.

Nothing here runs at import. :func:`start` (called by ``@observed`` on a function's first request,
or by any process that wants telemetry) installs, once per process:

* a ``TracerProvider`` sampling with ``ParentBased(TraceIdRatioBased(TRACE_SAMPLE_RATE))``, so a
  caller's sampling decision is kept across chaos_proxy and the upstreams;
* the W3C ``traceparent`` and Google ``X-Cloud-Trace-Context`` propagators, in and out (the
  ``requests`` instrumentation injects them into every outgoing call);
* a ``MeterProvider`` exporting every ``TELEMETRY_METRIC_INTERVAL_S``.

The provider is installed synchronously (every request gets a trace id from its first one); the
exporters and the requests instrumentation, whose imports cost a few hundred milliseconds, are
attached by a background thread, so a cold start does not wait for them (spans that end before
they are attached are held, up to 2,048, and exported once they are: see
:mod:`shared.obs.early_spans`). ``start(wait=True)`` attaches them before returning.

Exporters (``TELEMETRY_EXPORTER``): ``cloud`` (Cloud Trace and Cloud Monitoring, the default when
deployed, i.e. ``K_SERVICE`` is set), ``otlp`` (OTLP/HTTP to ``OTEL_EXPORTER_OTLP_ENDPOINT``, the
default when that variable is set), ``file`` (JSON lines appended to ``TELEMETRY_FILE``, the
default when that is set: the local stack's readable store, see ``python -m shared.obs.traces``),
``none``. ``TELEMETRY_METRIC_SINK=package.module:callable`` names one more metric exporter, made
by that callable on start-up and exporting at the same interval next to the chosen one (the local
stack names ``shared.slo.local_metrics:exporter_from_env``, so the SLO monitor reads the emitted
metrics from its store, as it reads them from Cloud Monitoring when deployed).

Head sampling cannot know a request's outcome and the SDK has no tail sampling, so an unsampled
failing request is not traced; its request log line (always written for errors) still carries its
trace id.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from shared.settings import Env, once

if TYPE_CHECKING:
    from opentelemetry.metrics import Meter
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

    from shared.obs.early_spans import EarlySpans
    from shared.obs.sink_factory import FactoryName

__all__ = [
    "Exporter",
    "TelemetrySettings",
    "current_span_ids",
    "extract",
    "inject",
    "meter",
    "settings",
    "shutdown",
    "start",
    "tracer",
]

Exporter = Literal["cloud", "otlp", "file", "none"]
EXPORTERS: Final[tuple[str, ...]] = ("auto", "cloud", "otlp", "file", "none")
SINK_ALLOWED: Final = "package.module:callable (e.g. shared.slo.local_metrics:exporter_from_env)"

logger = logging.getLogger("shared.obs.telemetry")


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    """The telemetry settings; rates are fractions 0..1, intervals seconds."""

    exporter: Exporter
    service_name: str | None
    sample_rate: float
    metric_interval_s: float
    file: str | None
    project_id: str | None
    deployed: bool
    metric_sink: FactoryName | None = None


@once
def settings() -> TelemetrySettings:
    """``TELEMETRY_EXPORTER``, ``TRACE_SAMPLE_RATE``, ``TELEMETRY_METRIC_INTERVAL_S``, ...

    ``TRACE_SAMPLE_RATE`` defaults to 1 locally and 0.1 when deployed.
    """
    env = Env()
    deployed = env.raw("K_SERVICE") is not None
    chosen = env.choice("TELEMETRY_EXPORTER", "auto", EXPORTERS)
    file = env.text("TELEMETRY_FILE")
    metric_sink = env.text("TELEMETRY_METRIC_SINK")
    exporter: Exporter
    if chosen != "auto":
        exporter = chosen  # type: ignore[assignment]
    elif deployed:
        exporter = "cloud"
    elif env.raw("OTEL_EXPORTER_OTLP_ENDPOINT"):
        exporter = "otlp"
    elif file:
        exporter = "file"
    else:
        exporter = "none"
    result = TelemetrySettings(
        exporter=exporter,
        service_name=env.text("OTEL_SERVICE_NAME") or env.text("K_SERVICE"),
        sample_rate=env.number("TRACE_SAMPLE_RATE", 0.1 if deployed else 1.0, low=0.0, high=1.0),
        # Cloud Monitoring accepts a point per series at most every 5 s; 60 s keeps cost low.
        metric_interval_s=env.number("TELEMETRY_METRIC_INTERVAL_S", 60.0, low=5.0, high=3600.0),
        file=file,
        project_id=env.project(),
        deployed=deployed,
        metric_sink=_factory_name(env, metric_sink),
    )
    if exporter == "file" and not file:
        env.problems.append(_file_problem())
    env.check()
    return result


def _factory_name(env: Env, text: str | None) -> FactoryName | None:
    if not text:
        return None
    from shared.obs.sink_factory import parse_factory_name

    try:
        return parse_factory_name(text)
    except ValueError:
        from shared.settings import Problem

        env.problems.append(Problem("TELEMETRY_METRIC_SINK", text, SINK_ALLOWED))
        return None


def _file_problem() -> Any:
    from shared.settings import Problem

    return Problem("TELEMETRY_FILE", "", "a file path when TELEMETRY_EXPORTER=file")


class _State:
    """What :func:`start` installed in this process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tracer_provider: TracerProvider | None = None
        self.early_spans: EarlySpans | None = None
        self.meter_provider: Any = None
        self.ready = threading.Event()
        self.stopped = False
        self.service = ""


_state = _State()


def start(
    service: str,
    *,
    wait: bool = False,
    span_exporter: SpanExporter | None = None,
    metric_reader: MetricReader | None = None,
) -> None:
    """Install the providers once per process (later calls return at once). The service is
    named by ``OTEL_SERVICE_NAME``, else ``K_SERVICE``, else ``service``.

    ``span_exporter``/``metric_reader`` replace the configured exporters (tests pass in-memory
    ones, with ``wait=True``).
    """
    if _installed():
        if wait:
            _state.ready.wait(30)
        return
    with _state.lock:
        if _installed():
            return
        config = settings()
        _state.service = config.service_name or service
        _state.tracer_provider = _install_tracing(_state.service, config)
    attach = threading.Thread(
        target=_attach_exporters,
        args=(config, span_exporter, metric_reader),
        name="telemetry-start",
        daemon=True,
    )
    attach.start()
    if wait:
        attach.join(30)


def _installed() -> bool:
    return _state.tracer_provider is not None


def _install_tracing(service: str, config: TelemetrySettings) -> TracerProvider:
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.cloud_trace_propagator import CloudTraceFormatPropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from shared.obs.early_spans import EarlySpans

    # Later propagators win on extract: a W3C traceparent overrides Google's older header.
    propagate.set_global_textmap(
        CompositePropagator([CloudTraceFormatPropagator(), TraceContextTextMapPropagator()])
    )
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}),
        sampler=ParentBased(TraceIdRatioBased(config.sample_rate)),
    )
    _state.early_spans = EarlySpans()
    provider.add_span_processor(_state.early_spans)
    trace.set_tracer_provider(provider)
    return provider


def _attach_exporters(
    config: TelemetrySettings,
    span_exporter: SpanExporter | None,
    metric_reader: MetricReader | None,
) -> None:
    try:
        _attach(config, span_exporter, metric_reader)
    except Exception:  # telemetry must never take the function down
        logger.exception("telemetry exporters could not be started; spans stay local")
        if _state.early_spans is not None:
            _state.early_spans.attach(None)  # nothing will export the held spans
    finally:
        _state.ready.set()


def _attach(
    config: TelemetrySettings,
    span_exporter: SpanExporter | None,
    metric_reader: MetricReader | None,
) -> None:
    # Outside any try block, so the bundler counts these imports as required (not optional).
    from opentelemetry import metrics
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    early = _state.early_spans
    assert early is not None
    if span_exporter is not None:
        early.attach(SimpleSpanProcessor(span_exporter))
    else:
        exporter = _span_exporter(config)
        early.attach(None if exporter is None else BatchSpanProcessor(exporter))
    readers = [metric_reader] if metric_reader is not None else _metric_readers(config)
    readers += _sink_readers(config)
    meter_provider = MeterProvider(
        resource=Resource.create({"service.name": _state.service}), metric_readers=readers
    )
    metrics.set_meter_provider(meter_provider)
    _state.meter_provider = meter_provider
    if not RequestsInstrumentor().is_instrumented_by_opentelemetry:
        RequestsInstrumentor().instrument()
    atexit.register(shutdown)


def _span_exporter(config: TelemetrySettings) -> SpanExporter | None:
    if config.exporter == "cloud":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        exporter: SpanExporter = CloudTraceSpanExporter(  # type: ignore[no-untyped-call]
            project_id=config.project_id
        )
        return exporter
    if config.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if config.exporter == "file":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=_appender(config), formatter=_one_line)
    return None


def _metric_readers(config: TelemetrySettings) -> list[MetricReader]:
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    interval_ms = config.metric_interval_s * 1000
    if config.exporter == "cloud":
        from opentelemetry.exporter.cloud_monitoring import CloudMonitoringMetricsExporter

        exporter: Any = CloudMonitoringMetricsExporter(project_id=config.project_id)
    elif config.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter()
    elif config.exporter == "file":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        exporter = ConsoleMetricExporter(out=_appender(config), formatter=_one_line)
    else:
        return []
    return [PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)]


def _sink_readers(config: TelemetrySettings) -> list[MetricReader]:
    """The reader of ``TELEMETRY_METRIC_SINK``'s exporter; none when unset, or (with a warning)
    when it cannot be made: the metrics are optional, serving is not."""
    if config.metric_sink is None:
        return []
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from shared.obs.sink_factory import load_factory

    try:
        exporter = load_factory(config.metric_sink)
    except Exception:
        logger.warning("TELEMETRY_METRIC_SINK=%s could not be loaded", config.metric_sink,
                       exc_info=True)  # fmt: skip
        return []
    if exporter is None:
        return []
    interval_ms = config.metric_interval_s * 1000
    reader = PeriodicExportingMetricReader(
        cast("MetricExporter", exporter), export_interval_millis=interval_ms
    )
    return [reader]


def _appender(config: TelemetrySettings) -> Any:
    # Several processes append to one file: O_APPEND puts each flushed line at the end whole.
    assert config.file is not None
    return open(config.file, "a", encoding="utf-8", buffering=1)


def _one_line(item: Any) -> str:
    return str(item.to_json(indent=None)) + "\n"


def shutdown() -> None:
    """Flush and stop the exporters (at exit; a second call does nothing)."""
    with _state.lock:
        if _state.stopped:
            return
        _state.stopped = True
    if _state.tracer_provider is not None:
        _state.tracer_provider.shutdown()
    if _state.meter_provider is not None:
        _state.meter_provider.shutdown()


def tracer(scope: str) -> Tracer:
    """A tracer for ``scope``; a no-op one until :func:`start` ran in this process."""
    from opentelemetry import trace

    return trace.get_tracer(scope)


def meter(scope: str) -> Meter:
    """A meter for ``scope``; its instruments record once :func:`start` attached the exporters."""
    from opentelemetry import metrics

    return metrics.get_meter(scope)


def extract(headers: Mapping[str, str]) -> Any:
    """The caller's context from ``traceparent`` / ``X-Cloud-Trace-Context`` (empty if none)."""
    from opentelemetry import propagate

    return propagate.extract(headers)


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace's headers (both formats) to an outgoing request's ``headers``."""
    from opentelemetry import propagate

    propagate.inject(headers)


def current_span_ids(span: Span | None = None) -> tuple[str, str, bool] | None:
    """``(trace_id, span_id, sampled)`` in hex of ``span`` (default: the current one), or None."""
    from opentelemetry import trace

    context = (span or trace.get_current_span()).get_span_context()
    if not context.is_valid:
        return None
    return (
        format(context.trace_id, "032x"),
        format(context.span_id, "016x"),
        context.trace_flags.sampled,
    )
