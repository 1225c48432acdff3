"""shared.resilience.telemetry: each event kind becomes a span under the caller's and a point."""

from __future__ import annotations

from typing import Any

import pytest

from shared.obs import telemetry
from shared.resilience import events
from shared.resilience.circuit import breaker
from shared.resilience.telemetry import TelemetryHook
from tests import otel


@pytest.fixture
def hook() -> TelemetryHook:
    return TelemetryHook()


def _spans_under(root_name: str, spans: Any) -> tuple[Any, list[Any]]:
    finished = spans.finished_spans()
    (root,) = [s for s in finished if s.name == root_name]
    root_id = root.context.span_id
    children = [s for s in finished if s.parent is not None and s.parent.span_id == root_id]
    return root, children


def test_waits_and_failures_are_child_spans_decisions_are_span_events(
    hook: TelemetryHook, spans: Any
) -> None:
    with telemetry.tracer("tests").start_as_current_span("request"):
        hook(events.AdmissionDecided("admission", plan="free", outcome="admitted", waited=0.25))
        hook(events.CacheAccessed("graph", "stale", key="graph:what is my phone 010-1234-5678"))
        hook(events.BreakerStateChanged("graph", old_state="closed", new_state="open"))
        hook(events.RetryScheduled("graph.query", attempt=1, wait=0.1, error="ReadTimeout"))
        hook(events.FallbackAttempted("gpt", outcome="failure", position=0, error="HTTP 502"))
        hook(events.RetryGaveUp("graph.query", attempts=3, elapsed=1.2, error="ReadTimeout"))
    root, children = _spans_under("request", spans)
    by_kind = {s.name: s for s in children}
    assert set(by_kind) == {"admission.decision", "retry.scheduled", "retry.gave_up"}
    wait = by_kind["admission.decision"]
    assert (wait.end_time - wait.start_time) == pytest.approx(0.25e9, rel=0.01)
    assert wait.attributes["resilience.plan"] == "free"
    assert by_kind["retry.scheduled"].attributes["resilience.attempt"] == 1
    assert by_kind["retry.gave_up"].status.status_code.name == "ERROR"
    assert all(c.context.trace_id == root.context.trace_id for c in children)
    marks = {e.name: e for e in root.events}
    assert set(marks) == {"cache.access", "breaker.state_change", "fallback.attempt"}
    assert marks["breaker.state_change"].attributes["resilience.new_state"] == "open"
    assert marks["fallback.attempt"].attributes["resilience.component"] == "gpt"
    assert marks["cache.access"].attributes["resilience.outcome"] == "stale"
    # A cache key holds the caller's question: it never reaches a span.
    assert "resilience.key" not in marks["cache.access"].attributes
    assert not any("phone" in str(v) for e in root.events for v in e.attributes.values())


def test_nothing_is_traced_outside_a_recording_span(hook: TelemetryHook, spans: Any) -> None:
    hook(events.AdmissionDecided("admission", plan="free", outcome="admitted", waited=0.25))
    assert spans.finished_spans() == []


def test_each_instrument_gets_points(hook: TelemetryHook) -> None:
    before = {
        "hit": otel.counter_value("resilience.cache.accesses", cache="c1", outcome="hit"),
        "fallback": otel.counter_value("resilience.fallback.answers", model="local-llm"),
    }
    hook(events.CacheAccessed("c1", "hit"))
    hook(events.CacheAccessed("c1", "hit"))
    hook(events.CacheAccessed("c1", "miss"))
    hook(events.FallbackCompleted("local-llm", fallback_used=True, attempts=2, ok=True))
    hook(events.FallbackAttempted("gpt-x", outcome="failure", position=0))
    hook(events.RetryScheduled("call-x", attempt=1, wait=0.0, error="e"))
    hook(events.BreakerStateChanged("dep-x", old_state="closed", new_state="open"))
    hook(events.BreakerRejected("dep-x", retry_after=3.0))
    hook(events.LimiterRejected("lim-x", retry_after=1.0))
    hook(events.AdmissionDecided("admission", plan="plan-x", outcome="rejected", waited=0.5))

    assert otel.counter_value("resilience.cache.accesses", cache="c1", outcome="hit") == (
        before["hit"] + 2
    )
    assert otel.counter_value("resilience.fallback.answers", model="local-llm") == (
        before["fallback"] + 1
    )
    assert otel.counter_value("resilience.fallback.attempts", model="gpt-x", outcome="failure") == 1
    assert otel.counter_value("resilience.retries", call="call-x", outcome="scheduled") == 1
    assert otel.counter_value("resilience.breaker.transitions", breaker="dep-x", to="open") == 1
    assert otel.counter_value("resilience.breaker.rejections", breaker="dep-x") == 1
    assert otel.counter_value("resilience.limiter.rejections", limiter="lim-x") == 1
    waits_points = otel.metric_points("resilience.admission.wait")
    (waits,) = [p for a, p in waits_points if a["plan"] == "plan-x"]
    assert (waits.count, waits.sum) == (1, 0.5)
    breaker("gauge-open", fail_max=1).open()
    breaker("gauge-closed", fail_max=1)
    gauge = {a["breaker"]: p.value for a, p in otel.metric_points("resilience.breaker.state")}
    assert (gauge["gauge-open"], gauge["gauge-closed"]) == (2, 0)
