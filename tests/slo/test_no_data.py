"""A monitor that cannot go blind quietly: no-data alerts across runs, outcomes counted."""

from __future__ import annotations

from typing import Any

import pytest

from shared.resilience.clock import FakeClock
from shared.slo.backends.local import LocalBackend
from shared.slo.config import Slo, parse_config
from shared.slo.errors import SourceError
from shared.slo.local_store import LocalStore
from shared.slo.measurement import Measurement
from shared.slo.monitor import Monitor
from shared.slo.recording import FirestoreRecorder
from shared.slo.window import Window
from tests.slo.helpers import TICK, local_config, ratio_slo, traffic
from tests.slo.slack_server import SlackServer
from tests.slo.test_monitor import docs, make_monitor

pytestmark = pytest.mark.firestore


def run_ticks(monitor_for: Any, clock: FakeClock, ticks: int) -> list[list[str]]:
    """``ticks`` scheduler runs 5 minutes apart; the no-data alerts each one filed."""
    filed = []
    for _ in range(ticks):
        filed.append(monitor_for().run().to_json()["no_data_alerts"])
        clock.advance(300)
    return filed


def test_no_data_for_n_windows_alerts_once_per_silence(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    config = local_config(ratio_slo("idle", function="idle", no_data_alert_after=3))
    clock = FakeClock(TICK + 1)

    def monitor() -> Monitor:
        return make_monitor(firestore_client, local_store, slack, clock, config)

    assert run_ticks(monitor, clock, 5) == [[], [], ["idle"], [], []]
    (message,) = slack.delivered
    assert message["text"] == "SLO idle: no data for 3 windows in a row (5m each)"
    assert message["blocks"][0]["text"]["text"] == ":grey_question: SLO without data: idle"
    state = docs(firestore_client, "slo_state")["idle"]
    assert (state["no_data_windows"], state["no_data_alerted"]) == (5, True)
    assert state["no_data_since"].timestamp() == TICK - 300
    (alert,) = docs(firestore_client, "slo_no_data").values()
    assert alert["alert_state"] == "sent"

    # Data comes back for one window: the count starts again, and a new silence alerts again.
    now = clock.time()
    traffic(local_store, "idle", start=now - now % 300 - 300, end=now - now % 300, count=50)
    assert run_ticks(monitor, clock, 4) == [[], [], [], ["idle"]]
    assert len(slack.delivered) == 2
    assert docs(firestore_client, "slo_state")["idle"]["no_data_windows"] == 3


def test_a_retried_run_counts_its_window_once(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    config = local_config(ratio_slo("idle", function="idle", no_data_alert_after=2))
    clock = FakeClock(TICK + 1)
    for _ in range(3):  # the same tick, retried by Cloud Scheduler
        make_monitor(firestore_client, local_store, slack, clock, config).run()
        clock.advance(20)
    assert docs(firestore_client, "slo_state")["idle"]["no_data_windows"] == 1
    assert slack.posts == []
    clock.advance(300)
    second = make_monitor(firestore_client, local_store, slack, clock, config).run()
    assert second.to_json()["no_data_alerts"] == ["idle"]
    again = make_monitor(firestore_client, local_store, slack, clock, config).run()
    assert again.recorded["idle"].duplicate
    assert len(slack.delivered) == 1


def test_no_data_alerts_can_be_turned_off(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    config = local_config(ratio_slo("idle", function="idle", no_data_alert_after=0))
    clock = FakeClock(TICK + 1)

    def monitor() -> Monitor:
        return make_monitor(firestore_client, local_store, slack, clock, config)

    assert run_ticks(monitor, clock, 3) == [[], [], []]
    assert docs(firestore_client, "slo_state") == {}
    assert slack.posts == []


class _BrokenSource:
    """A source whose every query fails as a bad filter does (a permanent error)."""

    def good_bad_ratio(self, slo: Slo, window: Window) -> Measurement:
        message = f"ListTimeSeries failed for {slo.name!r}: 400 bad filter"
        raise SourceError(message, transient=False)

    latency_percentile = good_bad_ratio


def test_the_summary_counts_each_outcome(
    firestore_client: Any, local_store: LocalStore, slack: SlackServer
) -> None:
    config = parse_config({
        "backends": {"local": {}, "broken": {"type": "local"}},
        "error_budget_policies": {"default": []},
        "slos": [
            ratio_slo("fine", function="fine"),
            ratio_slo("failing", function="failing"),
            ratio_slo("idle", function="idle"),
            {**ratio_slo("blind", function="blind"), "backend": "broken"},
        ],
    })  # fmt: skip
    traffic(local_store, "fine", start=TICK - 300, end=TICK, count=100)
    traffic(local_store, "failing", start=TICK - 300, end=TICK, count=100, errors=50)
    local = LocalBackend(local_store)
    broken = _BrokenSource()
    clock = FakeClock(TICK + 1)
    recorder = FirestoreRecorder(firestore_client, clock=clock)
    monitor = Monitor(
        config, lambda name: broken if name == "broken" else local, recorder, None, clock=clock
    )
    report = monitor.run()
    summary = report.to_json()
    assert summary["outcomes"] == {"ok": 1, "violation": 1, "no_data": 1, "error": 1}
    assert (summary["ok"], summary["no_data"]) == (["fine"], ["idle"])
    assert summary["violations"]["new"] == ["failing"]
    assert summary["errors"] == {"blind": ["5m: ListTimeSeries failed for 'blind': 400 bad filter"]}
    assert [r.slo.name for r in report.blind] == ["blind"]
    (stored,) = docs(firestore_client, "slo_runs").values()
    assert stored["outcomes"] == summary["outcomes"]
    assert "results" not in stored
