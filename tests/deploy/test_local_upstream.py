"""scripts/local_upstream.py: the demo upstream the local chaos_proxy forwards to."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from scripts import local_upstream, procs


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = local_upstream.serve(procs.free_port())
    yield server.server_port
    server.shutdown()
    server.server_close()


def request(
    port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"User-Agent": "t/1"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_echoes_the_request(port: int) -> None:
    status, body = request(port, "POST", "/a/b?x=1", b"hello")

    assert status == 200
    assert body == {
        "upstream": "local",
        "method": "POST",
        "path": "/a/b",
        "query": "x=1",
        "headers": {"user-agent": "t/1"},
        "body_bytes": 5,
    }


def test_status_and_sleep_parameters_shape_the_answer(port: int) -> None:
    started = time.monotonic()
    status, _ = request(port, "GET", "/x?status=503&sleep_ms=120")

    assert status == 503
    assert time.monotonic() - started >= 0.12


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=99", "status must be an integer between 200 and 599, got '99'"),
        ("sleep_ms=-1", "sleep_ms must be an integer between 0 and 10000, got '-1'"),
        ("sleep_ms=soon", "sleep_ms must be an integer between 0 and 10000, got 'soon'"),
    ],
)
def test_out_of_range_parameters_are_400_naming_them(port: int, query: str, message: str) -> None:
    status, body = request(port, "GET", f"/x?{query}")

    assert status == 400
    assert body == {"error": message}


def test_local_llm_answers_openai_style(port: int) -> None:
    payload = {"model": "local-llm", "messages": [{"role": "user", "content": "ping"}]}
    status, body = request(port, "POST", "/llm/v1/chat/completions", json.dumps(payload).encode())

    assert status == 200
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "(local-llm) ping"}


def test_local_llm_rejects_a_malformed_body(port: int) -> None:
    status, body = request(port, "POST", "/llm/v1/chat/completions", b'{"messages": 3}')

    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"


def test_keeps_connections_alive_without_nagle_stalls(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        durations = []
        for _ in range(30):
            started = time.perf_counter()
            conn.request("GET", "/x")
            conn.getresponse().read()
            durations.append(time.perf_counter() - started)
    finally:
        conn.close()
    # A Nagle/delayed-ACK stall costs 40 ms per request on Linux.
    assert sorted(durations)[len(durations) // 2] < 0.02


def graph_query(port: int, question: object) -> tuple[int, dict[str, Any]]:
    body = {"statements": [{"statement": "MATCH ...", "parameters": {"question": question}}]}
    return request(port, "POST", "/neo4j/db/neo4j/tx/commit", json.dumps(body).encode())


def test_neo4j_stand_in_answers_facts_of_the_named_topics(port: int) -> None:
    status, body = graph_query(port, "How does a Circuit Breaker relate to NEO4J?")

    assert status == 200
    assert body["errors"] == []
    (result,) = body["results"]
    assert result["columns"] == ["topic", "relation", "object"]
    rows = [item["row"] for item in result["data"]]
    assert rows == [
        ["Neo4j", "IS_A", "graph database"],
        ["Neo4j", "QUERIED_WITH", "Cypher"],
        ["circuit breaker", "PROTECTS", "callers from a failing dependency"],
        ["circuit breaker", "HAS_STATE", "open"],
    ]
    # Deterministic: the same question, the same rows.
    assert graph_query(port, "How does a Circuit Breaker relate to NEO4J?")[1] == body


def test_neo4j_stand_in_knows_nothing_of_unknown_topics(port: int) -> None:
    status, body = graph_query(port, "what is the weather")

    assert status == 200
    assert body["results"][0]["data"] == []


def test_neo4j_stand_in_rejects_a_request_without_a_question_as_neo4j_does(port: int) -> None:
    status, body = request(port, "POST", "/neo4j/db/neo4j/tx/commit", b'{"statements": []}')

    assert status == 400
    assert body["errors"][0]["code"] == "Neo.ClientError.Request.Invalid"


def deliver(port: int, body: bytes, key: str | None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Idempotency-Key": key} if key else {}
        conn.request("POST", "/insights/deliveries", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_insights_sink_accepts_counts_and_deduplicates_by_idempotency_key(port: int) -> None:
    before = request(port, "GET", "/insights/deliveries")[1]["accepted"]
    insight = json.dumps({"insight": {"kind": "weekly"}}).encode()

    first = deliver(port, insight, "key-1")
    repeat = deliver(port, insight, "key-1")
    other = deliver(port, insight, None)

    assert first[0] == 200
    assert first[1]["duplicate"] is False
    assert repeat == (200, {"accepted": True, "id": first[1]["id"], "duplicate": True})
    assert other[1]["duplicate"] is False
    summary = request(port, "GET", "/insights/deliveries")[1]
    assert summary["accepted"] == before + 2
    assert summary["last"][-1] == first[1]["id"]


@pytest.mark.parametrize("body", [b"", b"[]", b'{"insight": {}}', b'{"insight": "x"}'])
def test_insights_sink_rejects_a_body_without_an_insight(port: int, body: bytes) -> None:
    status, answer = deliver(port, body, None)

    assert status == 400
    assert "insight" in answer["error"]
