"""End to end on a real local stack: the monitor's gate rolls back, advances, halts on an organic
burn and declares recovery, with everything visible in Firestore and the Slack sink.

Short windows: the monitor's SLOs are judged over 3 s windows (page rule: 14.4x over 6 s
confirmed by 3 s) and the policy's stages last 3 s; the monitor runs in this process on the same
request store, Firestore emulator and Slack server the stack uses, exactly as the function
builds it (its ``run()`` is what each Scheduler call runs).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.canary import ComparisonPolicy, RolloutPolicy, RolloutStep, RolloutStore, cohort_of
from shared.canary.sources import LocalCohorts
from shared.slo.alerting import SlackWebhook
from shared.slo.backends.local import LocalBackend, LocalQuery
from shared.slo.config import BackendSpec, BurnRateRule, MonitorConfig, Slo
from shared.slo.local_store import LocalStore
from shared.slo.monitor import Monitor
from shared.slo.recording import FirestoreRecorder
from tests import services
from tests.canary.stack import ROLLOUT, Load, Stack, running_stack, wait_for_boundary
from tests.slo.slack_server import SlackServer, running_slack

pytestmark = [pytest.mark.slow, pytest.mark.firestore]

WINDOW_S = 3
PAGE = BurnRateRule("fast-burn", "page", 14.4, 2 * WINDOW_S, WINDOW_S)
SLOS = ("graphAsk-latency", "graphAsk-errors")
POLICY = RolloutPolicy(
    stages=(10, 50, 100),
    stage_min_s=3,
    stage_max_window_s=60,
    breaker_open_max_s=2,
    heartbeat_stale_s=30,
    recovery_windows=2,
    comparison=ComparisonPolicy(
        min_samples=20, alpha=0.01, latency_tolerance=1.0, error_rate_tolerance=0.05
    ),
)


def monitor_for(db: Path, client: Any, slack: SlackServer) -> Monitor:
    query = LocalQuery(("graphAsk",))
    config = MonitorConfig(
        slos=(
            Slo("graphAsk-latency", "graphAsk", "latency", "local", "latency_percentile", 0.95,
                WINDOW_S, (PAGE,), query, percentile=95, threshold_ms=900),
            Slo("graphAsk-errors", "graphAsk", "error_rate", "local", "good_bad_ratio", 0.99,
                WINDOW_S, (PAGE,), query),
        ),
        backends={"local": BackendSpec("local", "local", {"path": str(db)})},
        window_s=WINDOW_S,
    )  # fmt: skip
    store = LocalStore(db)
    notifier = SlackWebhook(lambda: slack.url, timeout_s=3)
    step = RolloutStep(
        RolloutStore(lambda: client, timeout_s=5), LocalCohorts(store), POLICY, notifier
    )
    recorder = FirestoreRecorder(client, timeout_s=5, cooldown_s=1)
    return Monitor(config, lambda _: LocalBackend(store), recorder, notifier, steps=[step])


class Gate:
    """Runs the monitor on the next window boundary; keeps a timeline of what it decided."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor
        self.timeline: list[tuple[float, dict[str, Any]]] = []
        self.t0 = time.time()

    def run(self) -> dict[str, Any]:
        wait_for_boundary(WINDOW_S)
        report = self.monitor.run()
        steps: Any = report.steps["rollouts"]
        judged = dict(steps["rollouts"].get(ROLLOUT) or {})
        self.timeline.append((time.time() - self.t0, judged))
        return judged

    def until(self, verdicts: set[str], runs: int) -> tuple[int, dict[str, Any]]:
        """Gate runs until one of ``verdicts``; (runs taken, that run's summary)."""
        judged: dict[str, Any] = {}
        for n in range(1, runs + 1):
            judged = self.run()
            if judged.get("verdict") in verdicts:
                return n, judged
        raise AssertionError(f"no {verdicts} in {runs} gate runs; timeline: {self.timeline}")


def _rollout_messages(slack: SlackServer) -> list[str]:
    return [str(p["text"]) for p in slack.delivered if ROLLOUT in str(p.get("text"))]


def _start(store: RolloutStore, stable: str, candidate: str) -> None:
    store.start(ROLLOUT, service="graphAsk", stable=stable, candidate=candidate, now=time.time(),
                stages=POLICY.stages, slos=SLOS)  # fmt: skip


def test_the_recovery_loop_end_to_end(
    tmp_path: Path, firestore_env: str, firestore_client: Any,
    firestore_service: services.Service, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    started = time.monotonic()
    with (
        running_slack() as slack,
        running_stack(tmp_path, firestore_service.host, firestore_env) as stack,
        Load(stack.graph_ask).running() as load,
    ):
        store = RolloutStore(lambda: firestore_client, timeout_s=5)
        gate = Gate(monitor_for(stack.db, firestore_client, slack))
        _worse_candidate_is_rolled_back_by_the_gate(stack, store, gate, slack)
        _recovery_is_declared_when_the_fault_ends(stack, store, gate, slack)
        _healthy_candidate_advances_to_100(stack, store, gate, slack)
        _organic_burn_halts_a_running_rollout(stack, store, gate, slack)
        _recovery_is_declared_when_the_fault_ends(stack, store, gate, slack)
        _failing_candidate_is_rolled_back_by_its_breaker(stack, store, gate)
    assert load.seen[("candidate", 200)] > 0
    assert load.seen[("stable", 200)] > 0
    with capsys.disabled():
        print(f"\nrollout e2e: {time.monotonic() - started:.0f} s; load {dict(load.seen)}")
        for at, judged in gate.timeline:
            print(
                f"  t+{at:5.1f}s {judged.get('verdict')!s:9} {judged.get('by')!s:26} "
                f"{judged.get('percent')!s:>4}%  {'; '.join(judged.get('reasons', []))[:150]}"
            )


def _worse_candidate_is_rolled_back_by_the_gate(
    stack: Stack, store: RolloutStore, gate: Gate, slack: SlackServer
) -> None:
    stack.experiment("llm-candidate", "slow", slow_ms=300)
    _start(store, "primary-llm", "candidate-llm")
    time.sleep(2)  # the candidate cohort's first requests
    runs, judged = gate.until({"rollback"}, runs=2)
    assert runs <= 2
    assert judged["by"] == "gate"
    assert judged["evidence"]["latency"]["outcome"] == "fail"
    assert judged["evidence"]["latency"]["candidate"] > 0.3  # seconds
    rollout = store.get(ROLLOUT)
    assert (rollout.status, rollout.percent, rollout.halted) == ("halted", 0, True)
    assert rollout.stable == "primary-llm"
    assert "Mann-Whitney" in rollout.halt_reason
    assert [t["verdict"] for t in store.transitions(ROLLOUT)][-1] == "rollback"
    assert any("rolled back" in m for m in _rollout_messages(slack))


def _recovery_is_declared_when_the_fault_ends(
    stack: Stack, store: RolloutStore, gate: Gate, slack: SlackServer
) -> None:
    stack.stop_experiments()
    time.sleep(2 * WINDOW_S)  # the fault's requests leave the SLOs' windows
    _, judged = gate.until({"recovered"}, runs=5)
    assert judged["by"] == "recovery"
    rollout = store.get(ROLLOUT)
    assert rollout.status == "recovered"
    assert rollout.recovered_at is not None
    transitions = store.transitions(ROLLOUT)
    assert transitions[-1]["verdict"] == "recovered"
    assert transitions[-1]["alert"] == "sent"
    assert _rollout_messages(slack)[-1].startswith(":white_check_mark: Resolved")


def _healthy_candidate_advances_to_100(
    stack: Stack, store: RolloutStore, gate: Gate, slack: SlackServer
) -> None:
    _start(store, "primary-llm", "candidate-llm")
    time.sleep(1.0)  # graph_ask re-reads the document every 0.5 s
    users = [f"probe-{i}" for i in range(200)]
    picked = {cohort_of(ROLLOUT, u, 10): u for u in users}
    for cohort, version in (("candidate", "candidate-llm"), ("stable", "primary-llm")):
        resp = requests.post(f"{stack.graph_ask}/graph_ask", json={"question": "What is Neo4j?"},
                             headers={"X-User-Id": picked[cohort]}, timeout=10)  # fmt: skip
        answer = resp.json()
        assert (answer["cohort"], answer["version"], answer["model"]) == (cohort, version, version)
        assert resp.headers["X-Rollout-Cohort"] == cohort
    verdicts: list[tuple[str, int]] = []
    for _ in range(8):
        judged = gate.run()
        verdicts.append((judged["verdict"], judged["percent"]))
        assert judged["verdict"] in ("hold", "advance", "complete"), judged
        if judged["verdict"] == "complete":
            break
    changes = [v for v in verdicts if v[0] != "hold"]
    assert changes == [("advance", 50), ("complete", 100)], verdicts
    rollout = store.get(ROLLOUT)
    assert (rollout.status, rollout.stable, rollout.candidate) == (
        "complete",
        "candidate-llm",
        None,
    )
    assert [(s.percent, s.outcome) for s in rollout.history] == [(10, "passed"), (50, "passed")]
    assert any("Rollout complete" in m for m in _rollout_messages(slack))


def _organic_burn_halts_a_running_rollout(
    stack: Stack, store: RolloutStore, gate: Gate, slack: SlackServer
) -> None:
    _start(store, "candidate-llm", "primary-llm")
    gate.run()
    # Every model slower than the latency SLO: graph_ask's own answers burn the budget.
    stack.experiment("llm", "slow", slow_ms=1200)
    stack.experiment("llm-candidate", "slow", slow_ms=1200)
    time.sleep(2 * WINDOW_S)
    _, judged = gate.until({"rollback"}, runs=3)
    assert judged["by"] == "slo:graphAsk-latency", judged
    assert judged["evidence"]["slos"]["graphAsk-latency"]["page_burn"] is True
    rollout = store.get(ROLLOUT)
    assert (rollout.status, rollout.percent, rollout.stable) == ("halted", 0, "candidate-llm")
    assert rollout.halted_by == "slo:graphAsk-latency"


def _failing_candidate_is_rolled_back_by_its_breaker(
    stack: Stack, store: RolloutStore, gate: Gate
) -> None:
    # The fallback model answers for a failing candidate (users see no error), so the signal
    # is the candidate's breaker, open longer than the policy allows.
    stack.experiment("llm", "error")
    _start(store, "candidate-llm", "primary-llm")
    _, judged = gate.until({"rollback"}, runs=3)
    assert judged["by"] == "breaker:llm:primary-llm", judged
    stack.stop_experiments()
