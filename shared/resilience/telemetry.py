"""OpenTelemetry for the resilience package: events become metrics and spans.

:class:`TelemetryHook` is an event hook (see :mod:`shared.resilience.events`). For every event it
marks the caller's current span (so a trace shows each breaker decision, retry wait, fallback
model attempt, cache outcome and admission wait where it happened) and records the matching
instrument:

=====================================  =========  ==========================================
instrument                             kind       attributes
=====================================  =========  ==========================================
``resilience.admission.wait``          histogram  ``plan``, ``outcome`` (seconds)
``resilience.cache.accesses``          counter    ``cache``, ``outcome`` (hit/miss/stale)
``resilience.fallback.attempts``       counter    ``model``, ``outcome``, ``position``
``resilience.fallback.answers``        counter    ``model`` (that answered), ``fallback_used``,
                                                  ``ok``
``resilience.retries``                 counter    ``call``, ``outcome`` (scheduled/gave_up)
``resilience.breaker.transitions``     counter    ``breaker``, ``from``, ``to``
``resilience.breaker.rejections``      counter    ``breaker``
``resilience.breaker.state``           gauge      ``breaker`` (0 closed, 1 half-open, 2 open)
``resilience.limiter.rejections``      counter    ``limiter``
=====================================  =========  ==========================================

Waits (admission, limiter, retry backoff) and failures (a retry giving up, a storage outage)
are child spans, a wait's duration being the wait; instant decisions (cache hit/miss/stale, a
breaker refusing or changing state, a model attempt's outcome) are span events on the caller's
span, since a child span per cache hit would cost more than the hit. Either carries the event's
fields as attributes (``resilience.<field>``). The HTTP call of each model attempt is a client
span of its own (the ``requests`` instrumentation). Nothing is recorded outside a recording span.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any, Final

from shared.obs import telemetry
from shared.obs.pii import mask
from shared.resilience import events

__all__ = ["BREAKER_STATE_VALUES", "TelemetryHook", "registered_breakers"]

SCOPE: Final = "shared.resilience"
BREAKER_STATE_VALUES: Final = {"closed": 0, "half-open": 1, "open": 2}

_WAITS: Final[dict[type[events.Event], str]] = {
    events.AdmissionDecided: "waited",
    events.LimiterWaited: "waited",
    events.RetryScheduled: "wait",
}


def registered_breakers() -> list[tuple[str, str]]:
    """``(name, state)`` of every circuit in the registry, for the breaker-state gauge."""
    from shared.resilience.circuit import breakers

    return [(name, circuit.state) for name, circuit in breakers().items()]


def _attributes(event: events.Event) -> dict[str, str | int | float | bool]:
    attributes: dict[str, str | int | float | bool] = {"resilience.component": event.name}
    for key, value in event.fields().items():
        # Cache keys hold the caller's text (a question): never in a span.
        if key in ("name", "key") or not isinstance(value, str | int | float | bool):
            continue
        attributes[f"resilience.{key}"] = mask(value) if isinstance(value, str) else value
    return attributes


_gauge_lock = threading.Lock()
_gauge_installed = False


def _install_breaker_gauge(meter: Any) -> None:
    """One ``resilience.breaker.state`` gauge per process, read from the breaker registry."""
    global _gauge_installed
    with _gauge_lock:
        if _gauge_installed:
            return
        _gauge_installed = True

    def observe(_options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        return [
            Observation(BREAKER_STATE_VALUES.get(state, -1), {"breaker": name})
            for name, state in registered_breakers()
        ]

    meter.create_observable_gauge(
        "resilience.breaker.state",
        callbacks=[observe],
        description="Circuit breaker state: 0 closed, 1 half-open, 2 open",
    )


class TelemetryHook:
    """Turns resilience events into OpenTelemetry spans and metric points."""

    def __init__(self) -> None:
        meter = telemetry.meter(SCOPE)
        self._tracer = telemetry.tracer(SCOPE)
        self._admission_wait = meter.create_histogram(
            "resilience.admission.wait", unit="s", description="Time a request waited for admission"
        )
        self._cache = meter.create_counter(
            "resilience.cache.accesses", description="Cache look-ups by outcome"
        )
        self._fallback_attempts = meter.create_counter(
            "resilience.fallback.attempts", description="Model attempts of the fallback chain"
        )
        self._fallback_answers = meter.create_counter(
            "resilience.fallback.answers", description="Fallback chain results"
        )
        self._retries = meter.create_counter("resilience.retries", description="Retry decisions")
        self._transitions = meter.create_counter(
            "resilience.breaker.transitions", description="Circuit breaker state changes"
        )
        self._rejections = meter.create_counter(
            "resilience.breaker.rejections", description="Calls refused by an open breaker"
        )
        self._limiter_rejections = meter.create_counter(
            "resilience.limiter.rejections", description="Calls refused by a rate limiter"
        )
        _install_breaker_gauge(meter)

    def __call__(self, event: events.Event) -> None:
        self._span(event)
        self._record(event)

    def _span(self, event: events.Event) -> None:
        from opentelemetry import trace

        current = trace.get_current_span()
        if not current.is_recording():
            return
        attributes = _attributes(event)
        wait_field = _WAITS.get(type(event))
        if wait_field is None and event.severity != "ERROR":
            # Instant decisions (a cache hit, a breaker admitting, a model answering) are events
            # on the caller's span: a child span per cache hit would cost more than the hit.
            current.add_event(event.kind, attributes)
            return
        now = time.time_ns()
        waited = float(getattr(event, wait_field)) if wait_field else 0.0
        span = self._tracer.start_span(
            event.kind, start_time=now - int(max(waited, 0.0) * 1e9), attributes=attributes
        )
        if event.severity == "ERROR":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, str(getattr(event, "error", ""))))
        span.end(end_time=now)

    def _record(self, event: events.Event) -> None:
        if isinstance(event, events.AdmissionDecided):
            self._admission_wait.record(
                event.waited, {"plan": event.plan, "outcome": event.outcome}
            )
        elif isinstance(event, events.CacheAccessed):
            self._cache.add(1, {"cache": event.name, "outcome": event.outcome})
        elif isinstance(event, events.FallbackAttempted):
            self._fallback_attempts.add(
                1, {"model": event.name, "outcome": event.outcome, "position": event.position}
            )
        elif isinstance(event, events.FallbackCompleted):
            self._fallback_answers.add(
                1, {"model": event.name, "fallback_used": event.fallback_used, "ok": event.ok}
            )
        elif isinstance(event, events.RetryScheduled):
            self._retries.add(1, {"call": event.name, "outcome": "scheduled"})
        elif isinstance(event, events.RetryGaveUp):
            self._retries.add(1, {"call": event.name, "outcome": "gave_up"})
        elif isinstance(event, events.BreakerStateChanged):
            self._transitions.add(
                1, {"breaker": event.name, "from": event.old_state, "to": event.new_state}
            )
        elif isinstance(event, events.BreakerRejected):
            self._rejections.add(1, {"breaker": event.name})
        elif isinstance(event, events.LimiterRejected):
            self._limiter_rejections.add(1, {"limiter": event.name})
