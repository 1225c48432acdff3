"""The rollout policy: the shipped file, durations, and every problem named at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.canary import CanaryConfigError, ComparisonPolicy, RolloutPolicy, load_policy
from shared.canary.policy import policy_from_mapping

REPO = Path(__file__).resolve().parents[2]


def test_the_shipped_policy() -> None:
    policy = load_policy(REPO / "config" / "canary.yaml")
    assert policy.stages == (10, 50, 100)
    assert policy.stage_min_s == 300
    assert policy.breaker_open_max_s == 120
    assert policy.recovery_windows == 3
    assert policy.comparison == ComparisonPolicy(50, 0.05, 0.2, 0.01)
    assert policy.next_stage(10) == 50
    assert policy.next_stage(50) == 100
    assert policy.next_stage(100) is None


def test_durations() -> None:
    policy = policy_from_mapping({"stage_min": "90s", "stage_max_window": "1h",
                                  "breaker_open_max": 30, "heartbeat_stale": "2m"})  # fmt: skip
    assert (policy.stage_min_s, policy.stage_max_window_s) == (90, 3600)
    assert (policy.breaker_open_max_s, policy.heartbeat_stale_s) == (30, 120)


def test_every_problem_is_named() -> None:
    with pytest.raises(CanaryConfigError) as caught:
        policy_from_mapping({"stages": [50, 10], "stage_min": "soon", "recovery_windows": 0,
                             "comparison": {"alpha": 0.9}, "speed": 1}, "canary.yaml")  # fmt: skip
    message = str(caught.value)
    for part in (
        "canary.yaml: unknown field 'speed'",
        "stage_min must be seconds or like 90s, 5m, 1h; got 'soon'",
        "comparison: alpha must be a number in (0, 0.5): 0.9",
    ):
        assert part in message
    with pytest.raises(CanaryConfigError) as again:
        RolloutPolicy(stages=(50, 10), recovery_windows=0)
    assert "stages must be strictly increasing" in str(again.value)
    assert "recovery_windows must be an integer from 1 to 1000, got 0" in str(again.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CanaryConfigError, match="cannot read the rollout policy"):
        load_policy(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n")
    with pytest.raises(CanaryConfigError, match="expected a mapping of policy fields"):
        load_policy(bad)
