"""graph_ask's admission, bad input, settings and status, through the test client."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from examples.graph_ask.settings import load_settings
from shared.settings import Env, SettingsError


def ask(client: Any, question: str, plan: str) -> Any:
    return client.post("/graph_ask", json={"question": question}, headers={"X-Plan": plan})


def test_over_capacity_premium_is_admitted_free_gets_429(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 30 rpm: a token every 2 s, a bucket of 1.25; free needs 1.25 (the 20 % premium reserve),
    # so after one premium request a free one would wait ~2 s: longer than it may (0 s).
    monkeypatch.setenv("GRAPH_ASK_RPM", "30")
    monkeypatch.setenv("GRAPH_ASK_FREE_WAIT_S", "0")
    monkeypatch.setenv("GRAPH_ASK_PREMIUM_WAIT_S", "3")

    first = ask(client, "what is Neo4j", "premium")
    free = ask(client, "what is Neo4j", "free")
    second = ask(client, "what is Neo4j", "premium")

    assert first.status_code == 200
    assert free.status_code == 429
    body = free.get_json()
    assert body["error"] == "rate_limited"
    assert body["plan"] == "free"
    assert body["retry_after_s"] > 0
    assert int(free.headers["Retry-After"]) >= 1
    # The second premium request queued for the next token instead of being refused.
    assert second.status_code == 200
    assert second.get_json()["queue_wait_ms"] > 500


def test_surge_admits_every_premium_and_refuses_most_free(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPH_ASK_RPM", "120")
    monkeypatch.setenv("GRAPH_ASK_PREMIUM_WAIT_S", "3")
    monkeypatch.setenv("GRAPH_ASK_FREE_WAIT_S", "0.2")
    monkeypatch.setenv("GRAPH_ASK_FREE_QUEUE", "2")
    plans = ["premium"] * 4 + ["free"] * 8
    with ThreadPoolExecutor(len(plans)) as pool:
        answers = list(pool.map(lambda p: (p, ask(client, "what is SLO", p)), plans))

    premium = [r.status_code for p, r in answers if p == "premium"]
    free = [r for p, r in answers if p == "free"]
    assert premium == [200] * 4
    refused = [r for r in free if r.status_code == 429]
    assert len(refused) >= 6, [r.status_code for r in free]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)


def test_admission_disabled_admits_the_same_surge(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPH_ASK_RPM", "60")
    monkeypatch.setenv("GRAPH_ASK_FREE_WAIT_S", "0")
    monkeypatch.setenv("GRAPH_ASK_DISABLE", "admission")

    statuses = [ask(client, "what is Neo4j", "free").status_code for _ in range(5)]

    assert statuses == [200] * 5
    status = client.get("/graph_ask/_status").get_json()
    assert status["admission"] is None
    assert status["config"]["disabled"] == ["admission"]


@pytest.mark.parametrize(
    ("body", "headers", "parameter"),
    [
        (None, {}, "body"),
        ([1, 2], {}, "body"),
        ({}, {}, "question"),
        ({"question": "  "}, {}, "question"),
        ({"question": "x" * 501}, {}, "question"),
        ({"question": 42}, {}, "question"),
        ({"question": "ok"}, {"X-Plan": "gold"}, "X-Plan"),
        ({"question": "ok", "user": "u" * 129}, {}, "user"),
        ({"question": "ok", "user": 7}, {}, "user"),
    ],
)
def test_bad_question_is_400_naming_the_parameter(
    client: Any, body: Any, headers: dict[str, str], parameter: str
) -> None:
    if body is None:
        resp = client.post("/graph_ask", data="not json", headers=headers)
    else:
        resp = client.post("/graph_ask", json=body, headers=headers)

    assert resp.status_code == 400
    answer = resp.get_json()
    assert answer["error"] == "invalid_parameter"
    assert answer["parameter"] == parameter
    assert answer["allowed"]
    assert answer["trace_id"] == resp.headers["X-Trace-Id"]


@pytest.mark.parametrize(
    "body",
    [{}, {"insight": {}}, {"insight": "text"}, {"insight": {"x": "y" * 20_000}}],
)
def test_bad_insight_is_400_naming_it(client: Any, body: Any) -> None:
    resp = client.post("/insights/deliver", json=body)

    assert resp.status_code == 400
    assert resp.get_json()["parameter"] == "insight"


def test_wrong_method_and_unknown_path_are_json(client: Any) -> None:
    get = client.get("/graph_ask")
    assert get.status_code == 405
    assert get.headers["Allow"] == "POST"
    assert get.get_json()["error"] == "method_not_allowed"

    missing = client.get("/nowhere")
    assert missing.status_code == 404
    assert "POST /graph_ask" in missing.get_json()["paths"]


def test_status_exports_breakers_cache_admission_and_config(client: Any) -> None:
    ask(client, "what is Firestore", "premium")
    ask(client, "what is Firestore", "premium")

    resp = client.get("/graph_ask/_status")

    assert resp.status_code == 200
    body = resp.get_json()
    assert body["breakers"] == {
        "graph": "closed",
        "llm:primary-llm": "closed",
        "llm:fallback-llm": "closed",
    }
    assert (body["cache"]["hits"], body["cache"]["misses"]) == (1, 1)
    assert body["cache"]["hit_rate"] == 0.5
    assert body["admission"]["premium_admitted"] == 2
    assert body["admission"]["capacity_rpm"] == 120
    assert body["config"]["models"] == ["primary-llm", "fallback-llm"]
    assert body["config"]["disabled"] == []


def test_bad_settings_name_every_variable_and_its_range() -> None:
    env = Env(
        {
            "GRAPH_ASK_RPM": "0",
            "GRAPH_URL": "ftp://graph",
            "GRAPH_ASK_DISABLE": "cache,brakes",
            "GRAPH_ASK_MODELS": "only-one",
        }
    )
    with pytest.raises(SettingsError) as caught:
        load_settings(env)

    text = str(caught.value)
    assert "GRAPH_ASK_RPM='0': must be an integer from 1 to 1000000" in text
    assert "GRAPH_URL='ftp://graph'" in text
    allowed = "must be a comma list of cache, fallback, admission (unknown brakes)"
    assert f"GRAPH_ASK_DISABLE='cache,brakes': {allowed}" in text
    assert "GRAPH_ASK_MODELS='only-one'" in text
    # No model table names the default models either: every problem is reported at once.
    assert [p.name for p in caught.value.problems] == [
        "GRAPH_ASK_MODELS",
        "GRAPH_ASK_RPM",
        "GRAPH_URL",
        "LLM_MODEL_TABLE",
        "GRAPH_ASK_DISABLE",
    ]


def test_a_model_missing_from_the_table_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="LLM_MODEL_TABLE='': must be a model table defining"):
        load_settings(Env({}))


def test_bad_settings_fail_the_request_without_a_stack_trace(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAPH_ASK_RPM", "lots")

    resp = ask(client, "what is Neo4j", "free")

    assert resp.status_code == 500
    assert resp.get_json()["error"] == "internal"
    assert "Traceback" not in resp.get_data(as_text=True)
