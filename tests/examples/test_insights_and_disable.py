"""Insight delivery with retries, and the switches that make a deliberately broken service."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from examples.graph_ask.answer import UX_FALLBACK_MESSAGE
from shared.obs import RequestRecord
from tests.examples.conftest import Peers


class FlakySink(ThreadingHTTPServer):
    """An insights sink answering 503 to its first ``failures`` POSTs, then 200."""

    daemon_threads = True

    def __init__(self, failures: int) -> None:
        super().__init__(("127.0.0.1", 0), _FlakyHandler)
        self.failures = failures
        self.bodies: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/deliveries"


class _FlakyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FlakySink

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.bodies.append(body)
            self.server.keys.append(self.headers.get("Idempotency-Key", ""))
            fail = len(self.server.bodies) <= self.server.failures
        data = b'{"ok": false}' if fail else b'{"ok": true}'
        self.send_response(503 if fail else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def flaky_sink(request: pytest.FixtureRequest) -> Iterator[FlakySink]:
    sink = FlakySink(request.param)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    yield sink
    sink.shutdown()
    sink.server_close()


def deliver(client: Any, insight: dict[str, Any], user: str | None = None) -> Any:
    body: dict[str, Any] = {"insight": insight}
    if user is not None:
        body["user"] = user
    return client.post("/insights/deliver", json=body)


def test_delivery_through_chaos_proxy_reaches_the_sink(
    client: Any, peers: Peers, records: list[RequestRecord]
) -> None:
    before = peers.sink_summary()["accepted"]

    resp = deliver(client, {"kind": "weekly", "score": 3}, user="u-1")

    assert resp.status_code == 200
    body = resp.get_json()
    assert body["delivered"] is True
    assert body["attempts"] == 1
    assert peers.sink_summary()["accepted"] == before + 1
    assert [(r.function, r.status) for r in records if r.function == "insights"] == [
        ("insights", 200)
    ]


@pytest.mark.parametrize("flaky_sink", [2], indirect=True)
def test_delivery_retries_then_succeeds(
    client: Any, flaky_sink: FlakySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INSIGHTS_SINK_URL", flaky_sink.url)

    resp = deliver(client, {"kind": "weekly"})

    assert resp.status_code == 200
    assert resp.get_json() == {
        "delivered": True,
        "attempts": 3,
        "delivery_id": flaky_sink.bodies[0]["delivery_id"],
    }
    # Every attempt carried the same idempotency key and body.
    assert len(set(flaky_sink.keys)) == 1
    assert flaky_sink.keys[0] == flaky_sink.bodies[0]["delivery_id"]
    status = client.get("/graph_ask/_status").get_json()
    assert status["insights"] == {"delivered": 1, "failed": 0, "attempts": 3}


def test_delivery_failing_every_attempt_is_502_with_the_outcome_recorded(
    client: Any,
    peers: Peers,
    monkeypatch: pytest.MonkeyPatch,
    records: list[RequestRecord],
) -> None:
    monkeypatch.setenv("GRAPH_ASK_INSIGHTS_ATTEMPTS", "3")
    peers.start_experiment("insights", "error")

    resp = deliver(client, {"kind": "weekly"})

    assert resp.status_code == 502
    body = resp.get_json()
    assert body["delivered"] is False
    assert body["attempts"] == 3
    assert "HTTP 502" in body["error"]
    assert [(r.function, r.status) for r in records if r.function == "insights"] == [
        ("insights", 502)
    ]
    status = client.get("/graph_ask/_status").get_json()
    assert status["insights"] == {"delivered": 0, "failed": 1, "attempts": 3}


def ask(client: Any, question: str) -> Any:
    return client.post("/graph_ask", json={"question": question}, headers={"X-Plan": "premium"})


def test_cache_disabled_every_question_goes_to_the_graph(
    client: Any, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPH_ASK_DISABLE", "cache")
    first = ask(client, "what is Cypher").get_json()
    second = ask(client, "what is Cypher").get_json()
    peers.start_experiment("neo4j", "error")
    third = ask(client, "what is Cypher").get_json()

    assert (first["served"], first["cache"]) == ("normal", "off")
    assert (second["served"], second["cache"]) == ("normal", "off")
    # With a cache this would have been a hit; without one the graph outage shows.
    assert (third["served"], third["cache"]) == ("degraded", "off")
    assert third["answer"] == UX_FALLBACK_MESSAGE


def test_fallback_disabled_an_llm_outage_is_a_503(
    client: Any, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPH_ASK_DISABLE", "fallback")
    assert ask(client, "what is an LLM").get_json()["breakers"] == {
        "graph": "closed",
        "llm:primary-llm": "closed",
    }
    peers.start_experiment("llm", "error")

    resp = ask(client, "what is an LLM")

    assert resp.status_code == 503
    body = resp.get_json()
    assert body["error"] == "llm_unavailable"
    assert body["trace_id"] == resp.headers["X-Trace-Id"]


def test_fallback_disabled_a_graph_outage_without_cache_is_a_503(
    client: Any, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPH_ASK_DISABLE", "cache,fallback,admission")
    peers.start_experiment("neo4j", "slow", slow_ms=1500)

    started = time.perf_counter()
    resp = ask(client, "what is Firestore")
    elapsed = time.perf_counter() - started

    assert resp.status_code == 503
    assert resp.get_json()["error"] == "graph_unavailable"
    # Two bounded attempts (~0.7 s), below the 1.5 s that a single unbounded one would take.
    assert elapsed < 1.45
