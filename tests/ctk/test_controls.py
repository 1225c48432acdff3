"""The project's controls: the rehearsal setting, the safeguard, the measured numbers."""

from __future__ import annotations

from typing import Any

import pytest
from chaoslib.exceptions import InterruptExecution

from shared.chaos.ctk import controls
from shared.chaos.ctk.measurements import measurements
from shared.chaos.ctk.rehearsal import apply_rehearsal, rehearsing
from shared.settings import Env, SettingsError

HTTP_ACTION = {"type": "action", "name": "start", "provider": {"type": "http", "url": "x"}}


def test_rehearsal_replaces_what_the_caller_did_not_set() -> None:
    configuration = {"load_s": 840.0, "outage_s": 60, "url": "u"}
    baseline = {"load_s": 840.0, "outage_s": 900, "url": "u"}  # outage_s came from --var
    applied = apply_rehearsal(configuration, baseline, {"load_s": 8, "outage_s": 30, "nope": 1})
    assert applied == {"load_s": 8}
    assert configuration == {"load_s": 8, "outage_s": 60, "url": "u"}


def test_rehearsal_flag_is_read_through_shared_settings() -> None:
    assert rehearsing(Env({"PLAYBOOK_REHEARSAL": "yes"}))
    assert not rehearsing(Env({}))
    with pytest.raises(SettingsError, match="PLAYBOOK_REHEARSAL"):
        rehearsing(Env({"PLAYBOOK_REHEARSAL": "maybe"}))


def test_before_experiment_control_applies_the_rehearsal(monkeypatch: pytest.MonkeyPatch) -> None:
    experiment = {"configuration": {"load_s": {"type": "env", "key": "X_LOAD_S", "default": 840}}}
    configuration: dict[str, Any] = {"load_s": 840}
    monkeypatch.delenv("PLAYBOOK_REHEARSAL", raising=False)
    controls.before_experiment_control(
        experiment, configuration=configuration, experiment=experiment, rehearsal={"load_s": 8}
    )
    assert configuration == {"load_s": 840}
    monkeypatch.setenv("PLAYBOOK_REHEARSAL", "1")
    controls.before_experiment_control(
        experiment, configuration=configuration, experiment=experiment, rehearsal={"load_s": 8}
    )
    assert configuration == {"load_s": 8}


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        ({"status": "succeeded", "output": {"status": 201}}, None),
        ({"status": "succeeded", "output": {"status": 400, "body": "bad mode"}}, "HTTP 400"),
        ({"status": "failed", "exception": ["ConnectionError"]}, "failed"),
    ],
)
def test_the_safeguard_interrupts_a_failed_method_action(
    run: dict[str, Any], reason: str | None
) -> None:
    controls.before_method_control({})
    try:
        if reason is None:
            controls.after_activity_control(HTTP_ACTION, state=run)
        else:
            with pytest.raises(InterruptExecution, match=reason):
                controls.after_activity_control(HTTP_ACTION, state=run)
    finally:
        controls.after_method_control({})


def test_the_safeguard_ignores_probes_and_rollbacks() -> None:
    failed = {"status": "failed"}
    controls.before_method_control({})
    controls.after_activity_control({"type": "probe", "name": "p"}, state=failed)
    controls.after_method_control({})
    controls.after_activity_control(HTTP_ACTION, state=failed)  # a rollback: no interruption


def _load(p95: float) -> dict[str, Any]:
    return {"sent": 10, "latency_ms": {"p95": p95}, "answered_ratio": 1.0, "fallback_by_model": {}}


def test_measurements_derive_added_p95_and_the_prewarm_effect() -> None:
    journal = {
        "steady_states": {
            "before": {"probes": [{"activity": {"name": "q"}, "output": _load(100.0)}]},
            "after": {"probes": [{"activity": {"name": "q"}, "output": _load(250.0)}]},
        },
        "run": [
            {"activity": {"name": "start"}, "output": {"status": 201}},
            {
                "activity": {"name": "cold"},
                "output": {"prewarm": False, "first_ms": 300.0, "failures": 0},
            },
            {
                "activity": {"name": "warm"},
                "output": {"prewarm": True, "first_ms": 40.0, "failures": 0},
            },
        ],
    }
    summary = measurements(journal)
    assert [r["phase"] for r in summary["rows"]] == ["before", "after", "method", "method"]
    assert summary["derived"]["added_p95_ms[q]"] == 150.0
    assert summary["derived"]["prewarm_effect_ms"] == 260.0


def test_after_experiment_control_journals_the_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    journal: dict[str, Any] = {"status": "completed", "deviated": True, "run": []}
    journal["steady_states"] = {
        "before": {"probes": [{"activity": {"name": "q"}, "output": _load(5.0)}]}
    }
    controls.after_experiment_control({"title": "T"}, state=journal)
    (extension,) = journal["extensions"]
    assert extension["name"] == "measurements"
    assert extension["verdict"] == "deviated"
    assert "T: deviated" in capsys.readouterr().err


def test_a_steady_state_that_never_held_fails_the_run() -> None:
    probe = {"activity": {"name": "q"}, "output": _load(5.0), "tolerance_met": False}
    journal: dict[str, Any] = {
        "status": "completed",  # what Chaos Toolkit writes when the steady state fails before
        "deviated": False,
        "steady_states": {"before": {"steady_state_met": False, "probes": [probe]}},
    }
    controls.after_experiment_control({"title": "T"}, state=journal)
    assert journal["status"] == "failed"


def test_429s_and_queueing_over_time_are_summarised() -> None:
    output = {
        **_load(10.0),
        "timeline": [
            {"refused_ratio": 0.0, "queue_wait_p95_ms": 0.2},
            {"refused_ratio": 0.25, "queue_wait_p95_ms": 1500.4},
            {"refused_ratio": None, "queue_wait_p95_ms": None},
        ],
    }
    journal = {
        "steady_states": {"after": {"probes": [{"activity": {"name": "q"}, "output": output}]}}
    }
    (row,) = measurements(journal)["rows"]
    assert row["numbers"]["refused_pct_over_time"] == [0, 25, None]
    assert row["numbers"]["queue_p95_ms_over_time"] == [0, 1500, None]
