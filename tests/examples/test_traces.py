"""graph_ask's traces and metrics, captured in memory: one trace from the caller to the upstream.

graph_ask runs in-process (the test client), chaos_proxy and the stand-in upstream in threads of
this process, so every span of a request lands in the session's in-memory exporter.
"""

from __future__ import annotations

from typing import Any

from tests import otel
from tests.examples.conftest import Peers

TRACE = "5b8efff798038103d269b633813fc60c"
CALLER_SPAN = "eee19b7ec3c1b174"


def ask(client: Any, question: str) -> Any:
    return client.post(
        "/graph_ask",
        json={"question": question},
        headers={"X-Plan": "premium", "traceparent": f"00-{TRACE}-{CALLER_SPAN}-01"},
    )


def _tree(spans: Any) -> tuple[Any, dict[int, list[Any]]]:
    finished = spans.finished_spans(int(TRACE, 16))
    children: dict[int, list[Any]] = {}
    for span in finished:
        if span.parent is not None:
            children.setdefault(span.parent.span_id, []).append(span)
    (root,) = [s for s in finished if s.name == "POST graphAsk"]
    return root, children


def _descendants(span: Any, children: dict[int, list[Any]]) -> list[Any]:
    out = []
    for child in sorted(children.get(span.context.span_id, []), key=lambda s: s.start_time):
        out.append(child)
        out.extend(_descendants(child, children))
    return out


def test_a_fallback_answer_is_one_trace_through_chaos_proxy_to_the_upstream(
    client: Any, peers: Peers, spans: Any
) -> None:
    peers.start_experiment("llm", "error")
    resp = ask(client, "what is an error budget? (trace)")
    assert resp.get_json()["served"] == "fallback"
    assert resp.headers["X-Trace-Id"] == TRACE

    root, children = _tree(spans)
    assert root.parent is not None
    assert format(root.parent.span_id, "016x") == CALLER_SPAN
    assert root.attributes["http.response.status_code"] == 200
    below = _descendants(root, children)
    servers = [
        (s.resource.attributes["service.name"], s.name) for s in below if s.kind.name == "SERVER"
    ]
    # chaos_proxy's server spans (graph query, primary model refused) and the upstream's, all in
    # the caller's trace.
    assert ("tests", "POST chaos_proxy") in servers
    assert any(name.startswith("POST /neo4j") for _, name in servers)
    proxy_llm = [
        s
        for s in below
        if s.name == "POST chaos_proxy" and "/llm/" in str(s.attributes.get("url.path"))
    ]
    assert proxy_llm
    assert proxy_llm[0].attributes["http.response.status_code"] == 502
    assert proxy_llm[0].attributes["chaos.injected"] is True
    # The fallback chain's decisions are events on the request's span: the primary failed, the
    # fallback answered.
    attempts = [
        (e.attributes["resilience.component"], e.attributes["resilience.outcome"])
        for e in root.events
        if e.name == "fallback.attempt"
    ]
    assert attempts == [("primary-llm", "failure"), ("fallback-llm", "success")]


def test_a_failing_graph_shows_each_retry_wait_and_the_breaker(
    client: Any, peers: Peers, spans: Any
) -> None:
    peers.start_experiment("neo4j", "error")
    resp = ask(client, "what is a runbook? (trace)")
    assert resp.get_json()["served"] == "degraded"

    root, children = _tree(spans)
    below = _descendants(root, children)
    waits = [s for s in below if s.name == "retry.scheduled"]
    assert waits
    assert {s.attributes["resilience.component"] for s in waits} == {"graph"}
    # Each graph attempt is a client call through chaos_proxy answering the injected 502.
    graph_calls = [
        s
        for s in below
        if s.name == "POST chaos_proxy" and "/neo4j/" in str(s.attributes.get("url.path"))
    ]
    assert len(graph_calls) == len(waits) + 1
    assert {s.attributes["http.response.status_code"] for s in graph_calls} == {502}
    assert any(e.name == "cache.access" for e in root.events)


def test_insight_deliveries_are_counted_by_outcome(client: Any, peers: Peers) -> None:
    def count(outcome: str) -> float:
        return otel.counter_value("insights/deliveries", outcome=outcome)

    delivered, failed = count("delivered"), count("failed")
    assert client.post("/insights/deliver", json={"insight": {"k": 1}}).status_code == 200
    peers.start_experiment("insights", "error")
    assert client.post("/insights/deliver", json={"insight": {"k": 2}}).status_code == 502
    assert (count("delivered"), count("failed")) == (delivered + 1, failed + 1)


def test_request_durations_carry_the_function_and_status(client: Any, peers: Peers) -> None:
    def count() -> int:
        return sum(
            p.count
            for a, p in otel.metric_points("http.server.request.duration")
            if a["function"] == "graphAsk" and a["http.response.status_code"] == 200
        )

    before = count()
    ask(client, "what is a histogram? (trace)")
    assert count() == before + 1
