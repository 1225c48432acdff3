"""What ``@observed`` sets up once per instance: settings, logging, the request store, samplers.

Settings are read from the environment once, on the first request (never at import), through
:mod:`shared.settings`; a bad value fails that request with a ``SettingsError`` naming the
variable and its range, and the next request tries again. :func:`reset_instances` forgets all of
it (tests call it through :func:`shared.obs.testing.reset`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.lazy import Memo
from shared.obs.logging import setup_logging
from shared.obs.sampling import RequestLogSampler, SamplingConfig, sampling_from_env
from shared.obs.sink_factory import (
    SINK_ALLOWED,
    SINK_ENV,
    FactoryName,
    install_configured_sink,
    parse_factory_name,
)
from shared.settings import Env, once

if TYPE_CHECKING:
    from opentelemetry.metrics import Histogram
    from opentelemetry.trace import Tracer

#: Seconds; OpenTelemetry's recommended boundaries for ``http.server.request.duration``.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)


@dataclass(frozen=True, slots=True)
class RequestSettings:
    """The request path's settings: log sampling and the named request store."""

    sampling: SamplingConfig
    sink: FactoryName | None


@once
def request_settings() -> RequestSettings:
    """``REQUEST_LOG_*`` and ``REQUEST_SINK``, read once per instance."""
    env = Env()
    settings = RequestSettings(
        sampling=sampling_from_env(env),
        sink=env.parse(SINK_ENV, None, parse_factory_name, allowed=SINK_ALLOWED),
    )
    env.check()
    return settings


@dataclass(frozen=True, slots=True)
class Instance:
    """One observed function's per-instance state (its settings are :func:`request_settings`)."""

    sampler: RequestLogSampler
    tracer: Tracer
    durations: Histogram
    server_kind: Any


def _set_up(function: str) -> Instance:
    """Set ``function`` up in this instance: logging, the request sink, its instruments."""
    settings = request_settings()
    setup_logging(function=function)
    install_configured_sink(settings.sink)
    return Instance(RequestLogSampler(), *_instruments(function))


#: ``instance(function)``: the state of ``function`` in this instance, set up on its first request.
instance: Memo[str, Instance] = Memo(_set_up)


def _instruments(function: str) -> tuple[Tracer, Histogram, Any]:
    """The tracer, the request-duration histogram and SpanKind.SERVER (imported on first use)."""
    from opentelemetry.trace import SpanKind

    from shared.obs import telemetry

    telemetry.start(function)
    durations = telemetry.meter("shared.obs.http").create_histogram(
        "http.server.request.duration",
        unit="s",
        description="Duration of HTTP requests handled by the function, by status and cohort",
        explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
    )
    return telemetry.tracer("shared.obs.http"), durations, SpanKind.SERVER


def reset_instances() -> None:
    """Forget every function's set-up, so the next request sets it up again."""
    instance.clear()
