"""graph_ask through functions-framework's test client, its peers real (upstream, chaos_proxy)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from examples.graph_ask.answer import UX_FALLBACK_MESSAGE
from shared.obs import RequestRecord
from tests import services
from tests.examples.conftest import Peers


def ask(client: Any, question: str, plan: str | None = None, **headers: str) -> Any:
    if plan is not None:
        headers["X-Plan"] = plan
    return client.post("/graph_ask", json={"question": question}, headers=headers)


def names(records: list[RequestRecord]) -> list[tuple[str, int]]:
    return [(r.function, r.status) for r in records if r.function != "chaos_proxy"]


def test_normal_answer_from_graph_and_primary_model(
    client: Any, records: list[RequestRecord]
) -> None:
    resp = ask(client, "What is Neo4j?", "premium")

    assert resp.status_code == 200
    body = resp.get_json()
    assert body["served"] == "normal"
    assert body["model"] == "primary-llm"
    assert body["cache"] == "miss"
    assert body["plan"] == "premium"
    assert body["breakers"] == {
        "graph": "closed",
        "llm:primary-llm": "closed",
        "llm:fallback-llm": "closed",
    }
    # The model saw the graph's facts: the local LLM echoes its prompt.
    assert "Neo4j is a graph database" in body["answer"]
    assert body["trace_id"] == resp.headers["X-Trace-Id"]
    assert body["queue_wait_ms"] >= 0.0
    assert "degraded_reason" not in body
    assert names(records) == [("graphAsk", 200)]
    # The graph and the primary model were reached through chaos_proxy.
    proxied = sorted(r.path for r in records if r.function == "chaos_proxy")
    assert proxied == [
        "/chaos_proxy/llm/v1/chat/completions",
        "/chaos_proxy/neo4j/db/neo4j/tx/commit",
    ]


def test_second_ask_is_a_cache_hit(client: Any) -> None:
    first = ask(client, "tell me about Firestore").get_json()
    second = ask(client, "  Tell me   about FIRESTORE ").get_json()

    assert (first["served"], first["cache"]) == ("normal", "miss")
    assert (second["served"], second["cache"]) == ("cached", "hit")
    assert second["model"] == "primary-llm"


def test_graph_failing_serves_the_stale_entry(
    client: Any, peers: Peers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPH_ASK_CACHE_TTL_S", "0.2")
    assert ask(client, "what is a circuit breaker").get_json()["cache"] == "miss"
    time.sleep(0.25)
    peers.start_experiment("neo4j", "error")

    body = ask(client, "what is a circuit breaker").get_json()

    assert body["served"] == "stale"
    assert body["cache"] == "stale"
    assert "circuit breaker protects" in body["answer"]
    assert body["model"] == "primary-llm"


def test_graph_slow_without_cache_entry_degrades_quickly(client: Any, peers: Peers) -> None:
    peers.start_experiment("neo4j", "slow", slow_ms=1500)
    timings = []
    bodies = []
    for n in range(6):
        started = time.perf_counter()
        resp = ask(client, f"what is cypher {n}", "premium")
        timings.append(time.perf_counter() - started)
        assert resp.status_code == 200
        bodies.append(resp.get_json())

    assert {b["served"] for b in bodies} == {"degraded"}
    assert {b["degraded_reason"] for b in bodies} == {"graph_unavailable"}
    assert {b["answer"] for b in bodies} == {UX_FALLBACK_MESSAGE}
    assert {b["model"] for b in bodies} == {None}
    # Each of the first answers waited two bounded attempts (0.3 s each), not the 1.5 s delay
    # (the margin is for a loaded CI machine) ...
    assert max(timings) < 1.2, timings
    # ... and once four had failed the breaker opened: the rest degrade without a graph call.
    assert bodies[-1]["breakers"]["graph"] == "open"
    assert max(timings[4:]) < 0.3, timings


def test_primary_model_down_fallback_answers(client: Any, peers: Peers) -> None:
    peers.start_experiment("llm", "error")

    bodies = [ask(client, f"what is an SLO? ({n})").get_json() for n in range(5)]

    assert {b["served"] for b in bodies} == {"fallback"}
    assert {b["model"] for b in bodies} == {"fallback-llm"}
    assert all("SLO measures what users see" in b["answer"] for b in bodies)
    # Four primary failures opened its breaker; the fifth skipped it.
    assert bodies[-1]["breakers"]["llm:primary-llm"] == "open"
    assert bodies[-1]["breakers"]["llm:fallback-llm"] == "closed"
    metrics = client.get("/graph_ask/_status").get_json()["metrics"]
    assert metrics["fallback"]["fallback_hit_rate"] == 1.0
    assert metrics["breakers"]["open"] == ["llm:primary-llm"]


def test_no_model_answering_degrades_with_the_ux_message(
    client: Any, peers: Peers, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    peers.start_experiment("llm", "error")
    # The fallback model is unreachable too: a port nothing listens on.
    table = json.loads(Path(os.environ["LLM_MODEL_TABLE"]).read_text())
    base_url = f"http://127.0.0.1:{services.free_port()}/v1"
    table["models"]["gone-llm"] = {"provider": "openai", "base_url": base_url, "timeout": 1}
    (tmp_path / "gone.json").write_text(json.dumps(table))
    monkeypatch.setenv("LLM_MODEL_TABLE", str(tmp_path / "gone.json"))
    monkeypatch.setenv("GRAPH_ASK_MODELS", "primary-llm,gone-llm")

    resp = ask(client, "what is retry")

    assert resp.status_code == 200
    body = resp.get_json()
    assert body["served"] == "degraded"
    assert body["degraded_reason"] == "llm_unavailable"
    assert body["answer"] == UX_FALLBACK_MESSAGE
    assert body["model"] is None
    assert body["cache"] == "miss"
