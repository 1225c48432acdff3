"""Whole runs against Google's Firestore emulator and a real local Slack webhook server."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from shared.gcp import firestore as fs
from shared.resilience.clock import FakeClock
from shared.slo.alerting import SlackWebhook
from shared.slo.backends.local import LocalBackend
from shared.slo.compute import SloResult
from shared.slo.config import MonitorConfig
from shared.slo.errors import RecordError
from shared.slo.local_store import LocalStore
from shared.slo.monitor import Monitor
from shared.slo.recording import FirestoreRecorder, Recorded
from tests.slo.helpers import TICK, latency_slo, local_config, ratio_slo, traffic
from tests.slo.slack_server import Answer, SlackServer

pytestmark = pytest.mark.firestore

SECRET = "s3cr3tT0ken"


class FlakyRecorder(FirestoreRecorder):
    """Firestore that is unavailable for the first ``failures`` record calls."""

    def __init__(self, client: Any, failures: int, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.failures = failures
        self.calls = 0

    def record(self, result: SloResult, run_id: str) -> Recorded:
        self.calls += 1
        if self.calls <= self.failures:
            # What the recorder's bounded calls raise once their own retries are spent.
            raise fs.Unavailable("slo.record", "ServiceUnavailable: 503 (injected)")
        return super().record(result, run_id)


def make_monitor(
    client: Any,
    store: LocalStore,
    slack: SlackServer | None,
    clock: FakeClock,
    config: MonitorConfig | None = None,
    recorder: FirestoreRecorder | None = None,
) -> Monitor:
    config = config or local_config(ratio_slo())
    backend = LocalBackend(store)
    recorder = recorder or FirestoreRecorder(client, clock=clock, cooldown_s=3600)
    notifier = None
    if slack is not None:
        url = slack.url
        notifier = SlackWebhook(lambda: url, timeout_s=1.0, clock=clock)
    return Monitor(config, lambda _: backend, recorder, notifier, clock=clock,
                   link="https://console.example/slo")  # fmt: skip


def docs(client: Any, collection: str) -> dict[str, dict[str, Any]]:
    return {d.id: d.to_dict() for d in client.collection(collection).stream()}


def violate(store: LocalStore, end: float = TICK, errors: int = 10) -> None:
    traffic(store, "api", start=end - 300, end=end, count=100, errors=errors)


def test_a_violation_is_recorded_and_alerted(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    violate(local_store)
    clock = FakeClock(TICK + 2)
    report = make_monitor(firestore_client, local_store, slack, clock).run()
    summary = report.to_json()
    assert summary["violations"] == {"new": ["api-errors"], "ongoing": []}
    assert summary["alerts"]["sent"] == ["api-errors--20261126T120500Z-5m"]
    assert summary["alerts"]["pending"] == 0

    (doc_id, doc), = docs(firestore_client, "slo_violations").items()  # fmt: skip
    assert doc_id == "api-errors--20261126T120500Z-5m"
    assert doc["slo"] == "api-errors"
    assert doc["objective"] == "good ratio > 99%"
    assert doc["observed"] == pytest.approx(0.9)
    assert doc["window"] == "5m"
    assert doc["window_end"].timestamp() == TICK
    assert doc["burn_rate"] == pytest.approx(10.0)
    # The only traffic is these 5 minutes: 30m and 6h burn at 10x too, so slow-burn pages.
    assert doc["severity"] == "page"
    assert [a["rule"] for a in doc["alerts"]] == ["slow-burn", "budget-leak"]
    assert doc["alert_state"] == "sent"
    assert doc["detected_at"].timestamp() == TICK + 2

    (message,) = slack.delivered
    assert slack.paths == ["/services/T000/B000/s3cr3tT0ken"]
    assert "api-errors" in message["text"]
    fields = [f["text"] for f in message["blocks"][1]["fields"]]
    assert "*Objective*\ngood ratio > 99%" in fields
    assert "*Observed*\n90% good (10% bad)" in fields
    assert "*Window*\n2026-11-26 12:00 to 12:05 UTC (5m)" in fields
    assert message["blocks"][-1]["elements"][0]["url"] == "https://console.example/slo"

    runs = docs(firestore_client, "slo_runs")
    assert list(runs) == [report.run_id]
    assert runs[report.run_id]["evaluated"] == 1


def test_same_window_twice_leaves_one_record_and_one_alert(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    violate(local_store)
    clock = FakeClock(TICK + 2)
    first = make_monitor(firestore_client, local_store, slack, clock).run()
    clock.advance(30)  # a Cloud Scheduler retry of the same tick
    second = make_monitor(firestore_client, local_store, slack, clock).run()
    assert first.recorded["api-errors"].doc_id == second.recorded["api-errors"].doc_id
    assert second.recorded["api-errors"].duplicate
    assert len(docs(firestore_client, "slo_violations")) == 1
    assert len(slack.delivered) == 1


def test_two_runs_at_once_leave_one_record_and_one_alert(
    firestore_env: str, local_store: LocalStore, slack: SlackServer
) -> None:
    from google.cloud import firestore

    violate(local_store)
    config = local_config(ratio_slo(), latency_slo(), ratio_slo("other", function="other"))
    traffic(local_store, "other", start=TICK - 300, end=TICK, count=50, errors=5)
    barrier = threading.Barrier(3)
    reports = []

    def run() -> None:
        client = firestore.Client(project=firestore_env)
        clock = FakeClock(TICK + 1)
        # The emulator settles each conflicting commit by a ~2 s lock wait (Firestore aborts the
        # younger transaction at once): a loser's retries can pass the default 10 s deadline.
        recorder = FirestoreRecorder(client, clock=clock, cooldown_s=3600, timeout_s=30)
        monitor = make_monitor(client, local_store, slack, clock, config, recorder)
        barrier.wait()
        reports.append(monitor.run())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(reports) == 3
    client = firestore.Client(project=firestore_env)
    assert sorted(docs(client, "slo_violations")) == [
        "api-errors--20261126T120500Z-5m",
        "other--20261126T120500Z-5m",
    ]
    assert sorted(m["text"].split()[1] for m in slack.delivered) == ["api-errors", "other"]
    assert sum(1 for r in reports for rec in r.recorded.values() if not rec.duplicate) == 2


def test_ongoing_violation_is_not_realerted_within_the_cooldown(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    for k in range(14):  # 70 minutes of violation, one run per tick
        violate(local_store, end=TICK + 300 * k)
    states = []
    for _ in range(14):
        report = make_monitor(firestore_client, local_store, slack, clock).run()
        states.append(report.recorded["api-errors"].alert_state)
        clock.advance(300)
    assert report.recorded["api-errors"].classification == "ongoing"
    # First alert, then quiet for the 1 h cooldown, then a reminder.
    assert states[0] == "pending"
    assert states[1:12] == ["suppressed"] * 11
    assert states[12] == "pending"
    assert len(slack.delivered) == 2
    assert "ongoing violation" in slack.delivered[1]["blocks"][2]["elements"][0]["text"]
    assert len(docs(firestore_client, "slo_violations")) == 14


def test_escalation_alerts_within_the_cooldown(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    violate(local_store, errors=2)  # 2%: burns 2x everywhere, only budget-leak (ticket) fires
    first = make_monitor(firestore_client, local_store, slack, clock).run()
    assert first.results[0].severity == "ticket"
    clock.advance(300)
    # The next 5 minutes burn at 50x: fast-burn and slow-burn page.
    traffic(local_store, "api", start=TICK, end=TICK + 300, count=100, errors=50)
    second = make_monitor(firestore_client, local_store, slack, clock).run()
    assert second.results[0].severity == "page"
    assert second.recorded["api-errors"].alert_state == "pending"
    assert [m["text"].split("(")[1].split(")")[0] for m in slack.delivered] == ["ticket", "page"]


def test_recovery_is_announced_once(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    violate(local_store)
    make_monitor(firestore_client, local_store, slack, clock).run()
    traffic(local_store, "api", start=TICK, end=TICK + 300, count=2000)
    clock.advance(300)
    recovered = make_monitor(firestore_client, local_store, slack, clock).run()
    assert recovered.to_json()["recoveries"] == ["api-errors"]
    clock.advance(10)
    again = make_monitor(firestore_client, local_store, slack, clock).run()
    assert again.recorded == {}  # no longer alerting: nothing to record again
    assert [m["text"].split(":")[0] for m in slack.delivered] == [
        "SLO api-errors violated (page)",
        "SLO api-errors recovered",
    ]
    state = docs(firestore_client, "slo_state")["api-errors"]
    assert state["alerting"] is False


def test_slack_down_then_up_delivers_the_alert_once(
    firestore_client: Any,
    local_store: LocalStore,
    slack: SlackServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = FakeClock(TICK + 1)
    violate(local_store)
    slack.always(Answer(503, body="upstream " + SECRET))
    down = make_monitor(firestore_client, local_store, slack, clock).run()
    summary = down.to_json()
    assert summary["alerts"]["failed"] == ["api-errors--20261126T120500Z-5m"]
    assert len(slack.posts) == 3  # the retry policy's three attempts
    assert slack.delivered == []
    doc = docs(firestore_client, "slo_violations")["api-errors--20261126T120500Z-5m"]
    assert doc["alert_state"] == "failed"
    assert "HTTP 503" in doc["alert_error"]

    slack.always(Answer(200))
    clock.advance(60)  # a scheduler retry of the same tick, Slack is back
    up = make_monitor(firestore_client, local_store, slack, clock).run()
    assert up.to_json()["alerts"]["sent"] == ["api-errors--20261126T120500Z-5m"]
    clock.advance(300)
    violate(local_store, end=TICK + 300)
    make_monitor(firestore_client, local_store, slack, clock).run()  # ongoing: suppressed
    assert len(slack.delivered) == 1
    # The webhook URL is never in logs, records or the answer.
    everything = caplog.text + json.dumps(summary) + json.dumps(doc, default=str)
    assert SECRET not in everything
    assert "<webhook>" in doc["alert_error"]


def test_slack_429_retry_after_is_honoured(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    violate(local_store)
    slack.script(Answer(429, retry_after="7"), Answer(500))
    report = make_monitor(firestore_client, local_store, slack, clock).run()
    assert report.to_json()["alerts"]["sent"] == ["api-errors--20261126T120500Z-5m"]
    assert len(slack.posts) == 3
    assert len(slack.delivered) == 1
    assert clock.sleeps[0] >= 7.0


def test_slack_hang_times_out_and_is_retried(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    violate(local_store)
    slack.script(Answer(200, hang_s=5.0))
    monitor = make_monitor(firestore_client, local_store, slack, clock)
    monitor.notifier = SlackWebhook(lambda: slack.url, timeout_s=0.3, clock=clock)
    report = monitor.run()
    assert report.to_json()["alerts"]["sent"] == ["api-errors--20261126T120500Z-5m"]
    assert len(slack.posts) == 2
    assert len(slack.delivered) == 1


def test_firestore_down_fails_the_run_at_once(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    violate(local_store)
    recorder = FlakyRecorder(firestore_client, failures=1, clock=clock)
    monitor = make_monitor(firestore_client, local_store, slack, clock, recorder=recorder)
    with pytest.raises(RecordError, match="Firestore failed to record api-errors"):
        monitor.run()
    # No second layer of retries over the client's own (bounded) ones: one call, no waits.
    assert recorder.calls == 1
    assert clock.sleeps == []
    assert slack.posts == []  # record first, alert second: nothing unrecorded is announced
    # The next run (Cloud Scheduler's retry) records and alerts as usual.
    clock.advance(30)
    report = make_monitor(firestore_client, local_store, slack, clock, recorder=recorder).run()
    assert report.recorded["api-errors"].classification == "new"
    assert len(slack.delivered) == 1


def test_no_data_and_ok_write_nothing_but_the_summary(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    config = local_config(ratio_slo(), ratio_slo("idle", function="idle"))
    traffic(local_store, "api", start=TICK - 300, end=TICK, count=100)
    report = make_monitor(firestore_client, local_store, slack, FakeClock(TICK + 1), config).run()
    summary = report.to_json()
    assert summary["ok"] == ["api-errors"]
    assert summary["no_data"] == ["idle"]
    assert docs(firestore_client, "slo_violations") == {}
    assert len(docs(firestore_client, "slo_runs")) == 1
    assert slack.posts == []


def test_without_slack_alerts_stay_pending_for_the_next_run(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    violate(local_store)
    silent = make_monitor(firestore_client, local_store, None, clock).run()
    assert silent.to_json()["alerts"]["configured"] is False
    assert silent.to_json()["alerts"]["pending"] == 1
    clock.advance(20)
    make_monitor(firestore_client, local_store, slack, clock).run()
    assert len(slack.delivered) == 1


def test_stale_undelivered_alerts_expire(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    violate(local_store)
    make_monitor(firestore_client, local_store, None, clock).run()
    clock.advance(2 * 86400)
    make_monitor(firestore_client, local_store, slack, clock).run()
    assert slack.posts == []
    (doc,) = docs(firestore_client, "slo_violations").values()
    assert doc["alert_state"] == "expired"


def test_summary_path_is_json_serializable(tmp_path: Path) -> None:
    # The run summary holds only JSON types (the function answers it as is).
    store = LocalStore(tmp_path / "m.db")
    violate(store)
    from shared.slo.compute import compute

    results = compute(local_config(ratio_slo()).slos, lambda _: LocalBackend(store), TICK)
    json.dumps(results[0].to_json())


def test_delivery_stops_at_the_budget_and_leaves_the_rest_pending(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    clock = FakeClock(TICK + 1)
    config = local_config(ratio_slo("a", function="a"), ratio_slo("b", function="b"))
    for name in ("a", "b"):
        traffic(local_store, name, start=TICK - 300, end=TICK, count=100, errors=10)
    slack.always(Answer(429, retry_after="15"))  # each alert: 2 posts, 15 s apart, then gives up
    backend = LocalBackend(local_store)
    recorder = FirestoreRecorder(firestore_client, clock=clock)
    notifier = SlackWebhook(lambda: slack.url, timeout_s=1.0, clock=clock)
    monitor = Monitor(config, lambda _: backend, recorder, notifier, clock=clock,
                      delivery_budget_s=10.0)  # fmt: skip
    alerts = monitor.run().to_json()["alerts"]
    assert (len(alerts["failed"]), alerts["pending"]) == (1, 1)
    assert len(slack.posts) == 2
    assert clock.sleeps == [15.0]
    states = sorted(d["alert_state"] for d in docs(firestore_client, "slo_violations").values())
    assert states == ["failed", "pending"]


def test_slack_retry_after_is_kept_across_runs(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    """Defect 11: a 429 asking for 120 s is not retried by the next run 30 s later."""
    clock = FakeClock(TICK + 1)
    config = local_config(ratio_slo("a", function="a"), ratio_slo("b", function="b"))
    for name in ("a", "b"):
        traffic(local_store, name, start=TICK - 300, end=TICK, count=100, errors=10)
    slack.always(Answer(429, retry_after="120"))
    first = make_monitor(firestore_client, local_store, slack, clock, config).run()
    alerts = first.to_json()["alerts"]
    # 120 s is past the message's 20 s deadline: no wait within the run, and the webhook (not
    # only this alert) is rate limited, so the other alert is not tried either.
    assert len(slack.posts) == 1
    assert alerts["failed"] == ["a--20261126T120500Z-5m"]
    assert alerts["deferred"] == ["b--20261126T120500Z-5m"]
    stored = docs(firestore_client, "slo_violations")
    assert stored["a--20261126T120500Z-5m"]["not_before"].timestamp() == TICK + 1 + 120
    assert stored["b--20261126T120500Z-5m"]["alert_state"] == "pending"

    slack.always(Answer(200))
    clock.advance(30)  # Cloud Scheduler retries 30 s later
    held = make_monitor(firestore_client, local_store, slack, clock, config).run()
    # b was never refused, so it goes; a waits out what Slack asked for.
    assert held.to_json()["alerts"]["sent"] == ["b--20261126T120500Z-5m"]
    assert [m["text"].split()[1] for m in slack.delivered] == ["b"]

    clock.advance(91)  # 121 s after the 429
    later = make_monitor(firestore_client, local_store, slack, clock, config).run()
    assert later.to_json()["alerts"]["sent"] == ["a--20261126T120500Z-5m"]
    assert sorted(m["text"].split()[1] for m in slack.delivered) == ["a", "b"]
    assert docs(firestore_client, "slo_violations")["a--20261126T120500Z-5m"]["not_before"] is None


class SlowRecorder(FirestoreRecorder):
    """A Firestore that answers, but each record takes ``seconds`` (on the fake clock)."""

    def __init__(self, client: Any, clock: FakeClock, seconds: float) -> None:
        super().__init__(client, clock=clock)
        self.fake_clock = clock
        self.seconds = seconds

    def record(self, result: SloResult, run_id: str) -> Recorded:
        self.fake_clock.advance(self.seconds)
        return super().record(result, run_id)


def test_a_slow_store_ends_the_run_at_its_budget(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    """Each step is bounded, and so is their sum: the run stops inside the function's timeout."""
    clock = FakeClock(TICK + 1)
    names = ("a", "b", "c", "d")
    config = local_config(*(ratio_slo(n, function=n) for n in names))
    for name in names:
        traffic(local_store, name, start=TICK - 300, end=TICK, count=100, errors=10)
    recorder = SlowRecorder(firestore_client, clock, seconds=40.0)
    monitor = make_monitor(firestore_client, local_store, slack, clock, config, recorder)
    with pytest.raises(RecordError, match=r"run budget of 90 s spent before: record d"):
        monitor.run()
    assert len(docs(firestore_client, "slo_violations")) == 3  # a, b, c: started in time
    assert slack.posts == []
