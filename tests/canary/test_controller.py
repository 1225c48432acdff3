"""The controller over the in-memory target and the gcloud dry-run plan (no cloud needed)."""

from __future__ import annotations

import io

import pytest

from shared.canary import (
    CanaryConfigError,
    CanaryController,
    CanaryDecided,
    GcloudTrafficPlan,
    MemoryRollout,
    Observation,
    RolloutConflict,
    RolloutHalted,
    RolloutState,
    Thresholds,
)
from shared.resilience import events

LIMITS = Thresholds(max_p95_ms=800, max_error_rate=0.01, min_requests=100)
HEALTHY = Observation(500, 1, 300.0)
SLOW = Observation(500, 1, 1500.0)


def test_advances_through_the_stages_then_holds() -> None:
    target = MemoryRollout(RolloutState("ask", "v2", 0, previous_version="v1"))
    controller = CanaryController(target, LIMITS)
    seen = []
    for percent in (0, 10, 50):
        result = controller.step(HEALTHY, observed_percent=percent)
        seen.append((result.decision.verdict, result.state.percent))
    final = controller.step(HEALTHY, observed_percent=100)
    assert seen == [("advance", 10), ("advance", 50), ("advance", 100)]
    assert (final.decision.verdict, final.state.percent) == ("hold", 100)
    assert final.decision.reasons == ("rollout complete at 100%",)
    assert target.state().generation == 3


def test_rollback_restores_previous_version_and_halts() -> None:
    recorder = events.Recorder()
    target = MemoryRollout(RolloutState("ask", "v2", 10, previous_version="v1"))
    controller = CanaryController(target, LIMITS)
    with events.use_hooks(recorder):
        result = controller.step(SLOW, observed_percent=10)
        again = controller.step(HEALTHY, observed_percent=0)
    assert result.decision.verdict == "rollback"
    assert result.state == RolloutState(
        "ask", "v1", 0, None, True, "p95 1500.0 ms > 800 ms", "v2", 1
    )
    assert (again.decision.verdict, again.state.percent) == ("hold", 0)
    assert again.decision.reasons == ("rollout halted: p95 1500.0 ms > 800 ms",)
    with pytest.raises(RolloutHalted, match=r"rollout 'ask' is halted: p95 1500\.0 ms > 800 ms"):
        target.set_percent(50)
    decided = recorder.of(CanaryDecided)
    assert [(d.verdict, d.version, d.from_percent, d.to_percent) for d in decided] == [
        ("rollback", "v2", 10, 0),
        ("hold", "v1", 0, 0),
    ]
    assert decided[0].breaches == ("p95_ms",)


def test_a_retried_step_does_not_advance_twice() -> None:
    target = MemoryRollout(RolloutState("ask", "v2", 10, previous_version="v1"))
    controller = CanaryController(target, LIMITS)
    first = controller.step(HEALTHY, observed_percent=10)
    retry = controller.step(HEALTHY, observed_percent=10)
    assert first.state.percent == 50
    assert (retry.decision.verdict, retry.state.percent) == ("hold", 50)
    assert "stale observations: taken at 10%" in retry.decision.reasons[0]


def test_compare_and_set() -> None:
    target = MemoryRollout(RolloutState("ask", "v2", 10))
    assert target.set_percent(50, expected_percent=10).percent == 50
    assert target.set_percent(50, expected_percent=10).percent == 50  # retried: no change
    with pytest.raises(RolloutConflict, match="is at 50%, not 10%: not moving it to 100%"):
        target.set_percent(100, expected_percent=10)
    with pytest.raises(CanaryConfigError, match="percent must be an integer in"):
        target.set_percent(150)


def test_gcloud_plan_prints_traffic_splits() -> None:
    out = io.StringIO()
    plan = GcloudTrafficPlan(
        "graph-ask", region="asia-northeast3", canary="graph-ask-00042-new",
        baseline="graph-ask-00041-old", project="yago-vibe-spt", out=out,
    )  # fmt: skip
    controller = CanaryController(plan, LIMITS)
    controller.step(HEALTHY, observed_percent=0)
    controller.step(HEALTHY, observed_percent=10)
    controller.step(SLOW, observed_percent=50)
    prefix = "gcloud run services update-traffic graph-ask --region=asia-northeast3"
    project = "--project=yago-vibe-spt"
    assert plan.commands == [
        f"{prefix} --to-revisions=graph-ask-00042-new=10,graph-ask-00041-old=90 {project}",
        f"{prefix} --to-revisions=graph-ask-00042-new=50,graph-ask-00041-old=50 {project}",
        f"{prefix} --to-revisions=graph-ask-00041-old=100 {project}",
    ]
    assert out.getvalue().splitlines() == plan.commands
    assert plan.state().halted


def test_gcloud_plan_rejects_shell_metacharacters() -> None:
    with pytest.raises(CanaryConfigError, match="service must be a Cloud Run name"):
        GcloudTrafficPlan("svc; rm -rf /", region="r", canary="a", baseline="b")
