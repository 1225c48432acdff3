"""The gate as a step of the slo_monitor function: wired by the function module, judged on the
run's data, recorded in Firestore, alerted to Slack (whose failures are retried next run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.canary import Decision, RolloutPolicy, RolloutStep, RolloutStore
from shared.canary.sources import LocalCohorts
from shared.obs.requests import RequestRecord
from shared.resilience.clock import FakeClock
from shared.slo import service
from shared.slo.alerting import SlackWebhook
from shared.slo.local_store import LocalStore
from tests.slo.slack_server import Answer, SlackServer, running_slack

pytestmark = pytest.mark.firestore

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "slo_monitor" / "main.py")
NOW = 1_800_000_040.0  # 40 s into a 5-minute window


@pytest.fixture
def slack() -> Any:
    with running_slack() as server:
        yield server


@pytest.fixture
def monitor(tmp_path: Path, slack: SlackServer, monkeypatch: pytest.MonkeyPatch,
            firestore_env: str) -> Any:  # fmt: skip
    import functions_framework

    db = tmp_path / "metrics.db"
    monkeypatch.setenv("SLO_CONFIG", str(ROOT / "config" / "slos.local.yaml"))
    monkeypatch.setenv("LOCAL_METRICS_DB", str(db))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("ROLLOUT_CONFIG", str(ROOT / "config" / "canary.yaml"))
    service.reset(clock=FakeClock(NOW))
    store = LocalStore(db)
    records = [
        RequestRecord("graphAsk", "POST", "/graph_ask", 200, 100.0 + i % 7, "t", False,
                      NOW - 280 + i * 0.5, "stable")
        for i in range(400)
    ] + [
        RequestRecord("graphAsk", "POST", "/graph_ask", 200, 600.0 + i % 7, "t", False,
                      NOW - 280 + i * 2, "candidate")
        for i in range(100)
    ]  # fmt: skip
    store.append_many(records)
    yield functions_framework.create_app(target="slo_monitor", source=SOURCE).test_client()
    store.close()
    service.reset()


def test_the_monitor_run_rolls_a_slower_candidate_back(
    monitor: Any, slack: SlackServer, firestore_client: Any
) -> None:
    rollouts = RolloutStore(lambda: firestore_client)
    rollouts.start("ask-model", service="graphAsk", stable="primary-llm",
                   candidate="candidate-llm", now=NOW - 290,
                   slos=["graphAsk-latency", "graphAsk-errors"])  # fmt: skip
    slack.script(Answer(500), Answer(500), Answer(500))  # the webhook fails this whole run
    first = monitor.post("/")
    assert first.status_code == 200, first.get_data(as_text=True)
    body = first.get_json()
    assert body["ok"] == ["graphAsk-latency", "graphAsk-errors", "general-errors"]
    judged = body["steps"]["rollouts"]["rollouts"]["ask-model"]
    assert (judged["verdict"], judged["by"], judged["percent"]) == ("rollback", "gate", 0)
    assert judged["reasons"][0].startswith("candidate p95 606 ms > stable p95 106 ms x 1.2")
    assert judged["evidence"]["requests"] == {"candidate": 100, "stable": 400}
    assert judged["alerts"]["failed"]
    assert slack.delivered == []
    second = monitor.post("/")  # the next run: the recovery watch, and the alert again
    judged = second.get_json()["steps"]["rollouts"]["rollouts"]["ask-model"]
    assert (judged["verdict"], judged["reasons"]) == (
        "watch", ["healthy window 1 of 3 (graphAsk-latency, graphAsk-errors)"],
    )  # fmt: skip
    (message,) = slack.delivered
    assert message["text"].startswith(":rotating_light: Rollout rolled back: ask-model: candidate")
    assert "Mann-Whitney" in str(message["blocks"])
    transitions = rollouts.transitions("ask-model")
    assert [(t["verdict"], t["alert"], t["alert_attempts"]) for t in transitions] == [
        ("start", "none", 0), ("rollback", "sent", 2), ("watch", "none", 0),
    ]  # fmt: skip
    assert rollouts.get("ask-model").halt_reason.startswith("candidate p95 606 ms")


def test_rollouts_off_leaves_the_step_out(monitor: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLOUTS", "off")
    body = monitor.post("/").get_json()
    assert body["steps"] == {}


def test_a_bad_policy_is_config_invalid(
    monitor: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "canary.yaml"
    bad.write_text("stages: [50, 10]\n")
    monkeypatch.setenv("ROLLOUT_CONFIG", str(bad))
    response = monitor.post("/")
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "config_invalid"
    assert "ROLLOUT_CONFIG" in body["problems"][0]
    assert "stages must be strictly increasing" in body["problems"][0]


def test_an_alert_of_a_completed_rollout_is_retried_until_delivered(
    firestore_client: Any, tmp_path: Path
) -> None:
    db = LocalStore(tmp_path / "metrics.db")
    db.append_many(
        RequestRecord("graphAsk", "POST", "/graph_ask", 200, 100.0 + i % 9, "t", False,
                      NOW - 200 + i * 0.3, "candidate" if i % 2 else "stable")
        for i in range(400)
    )  # fmt: skip
    rollouts = RolloutStore(lambda: firestore_client)
    started = rollouts.start("ask-model", service="graphAsk", stable="v1", candidate="v2",
                             now=NOW - 3600)  # fmt: skip
    at_50 = rollouts.apply(started, Decision("advance", 10, 50, "gate", ("ok",)), NOW - 400)
    with running_slack() as server:
        server.script(*[Answer(500)] * 6)  # both alerts (advance, complete) fail this run
        step = RolloutStep(rollouts, LocalCohorts(db), RolloutPolicy(),
                           SlackWebhook(lambda: server.url, timeout_s=2))  # fmt: skip
        first = step((), NOW)["rollouts"]
        assert first["ask-model"]["verdict"] == "complete"  # type: ignore[index]
        assert server.delivered == []
        second = step((), NOW + 300)["rollouts"]
        assert second["ask-model"]["verdict"] is None  # type: ignore[index]
        assert [m["text"].split(":")[2].strip() for m in server.delivered] == [
            "Rollout advanced", "Rollout complete",
        ]  # fmt: skip
        assert step((), NOW + 600) == {"active": 0, "rollouts": {}}
    assert at_50.percent == 50
    db.close()
