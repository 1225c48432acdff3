"""OpenTelemetry for the resilience package: events become metrics and spans.

:class:`TelemetryHook` is an event hook (see :mod:`shared.resilience.events`). For every event it
adds a short span under the caller's current span (so a trace shows each breaker decision, retry
wait, fallback model attempt, cache outcome and admission wait where it happened) and records the
matching instrument:

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

Spans carry the event's fields as attributes (``resilience.<field>``); waits are spans whose
duration is the wait. Nothing is recorded until :func:`shared.obs.telemetry.start` has run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from shared.obs import telemetry
from shared.obs.pii import mask
from shared.resilience import events

__all__ = ["BREAKER_STATE_VALUES", "TelemetryHook"]

SCOPE: Final = "shared.resilience"
BREAKER_STATE_VALUES: Final = {"closed": 0, "half-open": 1, "open": 2}

_WAITS: Final[dict[type[events.Event], str]] = {
    events.AdmissionDecided: "waited",
    events.LimiterWaited: "waited",
    events.RetryScheduled: "wait",
}


class TelemetryHook:
    """Turns resilience events into OpenTelemetry spans and metric points."""

    def __init__(self, breaker_states: Callable[[], Iterable[tuple[str, str]]] | None = None):
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
        if breaker_states is not None:
            states = breaker_states

            def observe(_options: Any) -> Iterable[Any]:
                from opentelemetry.metrics import Observation

                return [
                    Observation(BREAKER_STATE_VALUES.get(state, -1), {"breaker": name})
                    for name, state in states()
                ]

            meter.create_observable_gauge(
                "resilience.breaker.state",
                callbacks=[observe],
                description="Circuit breaker state: 0 closed, 1 half-open, 2 open",
            )

    def __call__(self, event: events.Event) -> None:
        self._span(event)
        self._record(event)

    def _span(self, event: events.Event) -> None:
        now = time.time_ns()
        wait_field = _WAITS.get(type(event))
        waited = float(getattr(event, wait_field)) if wait_field else 0.0
        attributes: dict[str, str | int | float | bool] = {"resilience.component": event.name}
        for key, value in event.fields().items():
            # Cache keys hold the caller's text (a question): never in a span.
            if key in ("name", "key") or not isinstance(value, str | int | float | bool):
                continue
            attributes[f"resilience.{key}"] = mask(value) if isinstance(value, str) else value
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
