"""The controller against ``rollout/<name>`` in the Firestore emulator."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.canary import (
    CanaryController,
    CanaryError,
    FirestoreRollout,
    Observation,
    RolloutHalted,
    TargetUnavailable,
    Thresholds,
)
from shared.gcp import firestore as fs

pytestmark = pytest.mark.firestore

LIMITS = Thresholds(max_p95_ms=800, max_error_rate=0.01, min_requests=100, max_p95_ratio=1.2)
BASELINE = Observation(2000, 2, 400.0)
HEALTHY = Observation(500, 1, 420.0)
REGRESSED = Observation(500, 1, 600.0)  # under 800 ms, but 1.5 x the baseline


@pytest.fixture
def rollout(firestore_client: Any, unique: str) -> FirestoreRollout:
    return FirestoreRollout(f"graph-ask-{unique}", lambda: firestore_client)


def _doc(client: Any, rollout: FirestoreRollout) -> dict[str, Any]:
    return dict(client.collection("rollout").document(rollout.name).get().to_dict())


def test_advance_through_10_50_100(rollout: FirestoreRollout, firestore_client: Any) -> None:
    rollout.start("v1")
    rollout.set_percent(100)
    rollout.start("v2")
    controller = CanaryController(rollout, LIMITS, journal=rollout, clock=iter(range(100)).__next__)
    percents = [
        controller.step(HEALTHY, observed_percent=p, baseline=BASELINE).state.percent
        for p in (0, 10, 50)
    ]
    assert percents == [10, 50, 100]
    document = _doc(firestore_client, rollout)
    assert (document["version"], document["previous_version"], document["percent"]) == (
        "v2",
        "v1",
        100,
    )
    assert document["halted"] is False
    assert "updated_at" in document
    decisions = rollout.decisions()
    assert [(d["verdict"], d["current_percent"], d["percent_after"]) for d in decisions] == [
        ("advance", 0, 10),
        ("advance", 10, 50),
        ("advance", 50, 100),
    ]


def test_rollback_on_regression_restores_and_halts(
    rollout: FirestoreRollout, firestore_client: Any
) -> None:
    rollout.start("v1", percent=100)
    rollout.start("v2")
    controller = CanaryController(rollout, LIMITS, journal=rollout)
    controller.step(HEALTHY, observed_percent=0, baseline=BASELINE)
    result = controller.step(REGRESSED, observed_percent=10, baseline=BASELINE)
    assert result.decision.verdict == "rollback"
    assert result.decision.breaches == ("p95_ratio",)
    document = _doc(firestore_client, rollout)
    assert document["version"] == "v1"
    assert document["percent"] == 0
    assert document["halted"] is True
    assert document["halt_reason"] == "p95 600.0 ms > baseline 400.0 ms x 1.2"
    assert document["rolled_back_version"] == "v2"
    # Halted: healthy numbers no longer advance it, and direct advances are refused.
    after = controller.step(HEALTHY, observed_percent=0, baseline=BASELINE)
    assert (after.decision.verdict, after.state.percent) == ("hold", 0)
    with pytest.raises(RolloutHalted):
        rollout.set_percent(50)
    # Re-starting the rolled-back version is a retry, not a new rollout.
    assert rollout.start("v2").halted is True
    verdicts = [d["verdict"] for d in rollout.decisions()]
    assert verdicts == ["advance", "rollback", "hold"]


def test_retries_are_idempotent(rollout: FirestoreRollout, firestore_client: Any) -> None:
    rollout.start("v1")
    rollout.start("v2")
    controller = CanaryController(rollout, LIMITS)
    controller.step(HEALTHY, observed_percent=0, baseline=BASELINE)
    first = controller.step(HEALTHY, observed_percent=10, baseline=BASELINE)
    retried = controller.step(HEALTHY, observed_percent=10, baseline=BASELINE)
    assert (first.state.percent, retried.state.percent) == (50, 50)
    assert retried.decision.verdict == "hold"
    assert rollout.set_percent(50, expected_percent=10).generation == first.state.generation
    halted = rollout.rollback("manual")
    assert rollout.rollback("manual again") == halted  # a retried rollback changes nothing
    assert _doc(firestore_client, rollout)["halt_reason"] == "manual"


def test_a_new_version_after_a_rollback_starts_fresh(rollout: FirestoreRollout) -> None:
    rollout.start("v1", percent=100)
    rollout.start("v2", percent=10)
    rollout.rollback("bad")
    fresh = rollout.start("v3")
    assert (fresh.version, fresh.previous_version, fresh.halted, fresh.percent) == (
        "v3",
        "v1",
        False,
        0,
    )


def test_missing_rollout(rollout: FirestoreRollout) -> None:
    with pytest.raises(CanaryError, match="does not exist: start it first"):
        rollout.state()
    with pytest.raises(CanaryError, match="does not exist: start it first"):
        rollout.set_percent(10)


@pytest.mark.parametrize("call", ["state", "start", "decisions"])
def test_an_unreachable_store_is_target_unavailable_within_its_bound(
    monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """Nothing listens where Firestore should be: every call gives up within ``timeout_s``."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-unreachable")
    fs.reset_clients()
    rollout = FirestoreRollout("graph-ask", timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(TargetUnavailable, match="rollout store failed"):
        if call == "start":
            rollout.start("v2")
        else:
            getattr(rollout, call)()
    assert time.monotonic() - started < 6.0
    fs.reset_clients()
