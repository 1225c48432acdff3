"""Runner semantics with pure python probes: phases, statuses, rollbacks, journal, dry run."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from shared.playbook import Playbook, run_playbook
from tests.playbook import steps

HYPOTHESIS = """
hypothesis:
  title: answers flow
  probes:
    - type: probe
      name: steady
      provider:
        type: python
        func: tests.playbook.steps.metrics
        arguments:
          answer_rate: ${steady_rate}
      tolerance:
        path: output.fallback.answer_rate
        op: ">="
        value: 0.99
"""


def playbook_text(*, method: str, rollbacks: str = "", criteria: str = "") -> str:
    return (
        "title: runner test\nconfiguration:\n  steady_rate: 1.0\n  during_rate: 0.995\n"
        + HYPOTHESIS
        + "method:\n"
        + method
        + ("rollbacks:\n" + rollbacks if rollbacks else "")
        + ("success_criteria:\n" + criteria if criteria else "")
    )


METHOD = """
  - type: action
    name: inject
    provider: {type: python, func: tests.playbook.steps.act, arguments: {label: inject}}
    pauses: {after: 0.01}
  - type: probe
    name: during
    provider:
      type: python
      func: tests.playbook.steps.metrics
      arguments:
        answer_rate: ${during_rate}
        hit_rate: 0.97
"""
ROLLBACK = """
  - type: action
    name: restore
    provider: {type: python, func: tests.playbook.steps.act, arguments: {label: restore}}
"""
CRITERIA = """
  - name: answer rate
    probe: during
    tolerance: {path: output.fallback.answer_rate, op: ">=", value: 0.99}
  - name: fallback hits
    probe: during
    tolerance: {path: output.fallback.fallback_hit_rate, range: [0.9, 1.0]}
"""


def test_hypothesis_met_and_criteria_met(write_playbook: Callable[..., Playbook]) -> None:
    playbook = write_playbook(playbook_text(method=METHOD, rollbacks=ROLLBACK, criteria=CRITERIA))
    journal = run_playbook(playbook)
    assert journal.status == "completed"
    assert journal.ok
    assert journal.steady_state_before is True
    assert journal.steady_state_after is True
    assert journal.criteria_met is True
    assert [(s.phase, s.name) for s in journal.steps] == [
        ("hypothesis_before", "steady"),
        ("method", "inject"),
        ("method", "during"),
        ("hypothesis_after", "steady"),
        ("rollback", "restore"),
    ]
    assert steps.names() == ["metrics", "act", "metrics", "metrics", "act"]
    assert [c.actual for c in journal.criteria] == [0.995, 0.97]


def test_criterion_not_met_is_a_deviation(write_playbook: Callable[..., Playbook]) -> None:
    playbook = write_playbook(
        playbook_text(method=METHOD, rollbacks=ROLLBACK, criteria=CRITERIA),
        variables={"during_rate": "0.9"},
    )
    journal = run_playbook(playbook)
    assert journal.status == "deviated"
    assert not journal.ok
    assert journal.steady_state_after is True
    first = journal.criteria[0]
    assert (first.met, first.actual, first.reason) == (False, 0.9, "0.9 >= 0.99 is false")
    assert journal.steps_of("rollback")[0].status == "succeeded"


def test_hypothesis_not_held_before_skips_the_method(
    write_playbook: Callable[..., Playbook],
) -> None:
    playbook = write_playbook(
        playbook_text(method=METHOD, rollbacks=ROLLBACK, criteria=CRITERIA),
        variables={"steady_rate": "0.5"},
    )
    journal = run_playbook(playbook)
    assert journal.status == "failed"
    assert journal.steady_state_before is False
    assert journal.steps_of("method") == ()
    before = journal.steps_of("hypothesis_before")[0]
    assert before.tolerance_met is False
    assert before.tolerance_reason == "0.5 >= 0.99 is false"
    assert [s.name for s in journal.steps_of("rollback")] == ["restore"]


def test_rollbacks_run_after_a_failing_action(write_playbook: Callable[..., Playbook]) -> None:
    method = (
        METHOD.split("  - type: probe")[0]
        + """
  - type: action
    name: explode
    provider: {type: python, func: tests.playbook.steps.boom, arguments: {message: kaput}}
  - type: probe
    name: never
    provider: {type: python, func: tests.playbook.steps.value, arguments: {of: 1}}
"""
    )
    journal = run_playbook(write_playbook(playbook_text(method=method, rollbacks=ROLLBACK)))
    assert journal.status == "failed"
    explode = journal.steps_of("method")[-1]
    assert explode.name == "explode"
    assert explode.status == "failed"
    assert explode.exception == "RuntimeError: kaput"
    assert "value" not in steps.names()  # the method stopped at the failure
    assert journal.steps_of("hypothesis_after") == ()
    assert journal.steps_of("rollback")[0].output == {"done": "restore"}
    assert journal.rollbacks_succeeded


def test_interrupt_runs_rollbacks(write_playbook: Callable[..., Playbook]) -> None:
    method = """
  - type: action
    name: ctrl-c
    provider: {type: python, func: tests.playbook.steps.interrupt}
"""
    journal = run_playbook(write_playbook(playbook_text(method=method, rollbacks=ROLLBACK)))
    assert journal.status == "interrupted"
    assert journal.steps_of("method")[0].exception == "interrupted"
    assert steps.names()[-1] == "act"
    assert journal.steps_of("rollback")[0].status == "succeeded"


def test_stop_event_interrupts_a_pause(write_playbook: Callable[..., Playbook]) -> None:
    method = """
  - type: action
    name: long-nap
    provider: {type: sleep, seconds: 30}
"""
    stop = threading.Event()
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    journal = run_playbook(
        write_playbook(playbook_text(method=method, rollbacks=ROLLBACK)), stop=stop
    )
    timer.cancel()
    assert journal.status == "interrupted"
    assert journal.duration_s < 10
    assert journal.steps_of("rollback")[0].status == "succeeded"


def test_failing_rollback_is_journaled(write_playbook: Callable[..., Playbook]) -> None:
    rollbacks = """
  - type: action
    name: broken-restore
    provider: {type: python, func: tests.playbook.steps.boom, arguments: {message: stuck}}
  - type: action
    name: second-restore
    provider: {type: python, func: tests.playbook.steps.act, arguments: {label: second}}
"""
    journal = run_playbook(
        write_playbook(playbook_text(method=METHOD, rollbacks=rollbacks, criteria=CRITERIA))
    )
    assert journal.status == "completed"
    assert not journal.rollbacks_succeeded
    assert not journal.ok
    assert [s.status for s in journal.steps_of("rollback")] == ["failed", "succeeded"]


def test_dry_run_calls_nothing(write_playbook: Callable[..., Playbook]) -> None:
    playbook = write_playbook(playbook_text(method=METHOD, rollbacks=ROLLBACK, criteria=CRITERIA))
    journal = run_playbook(playbook, dry_run=True)
    assert steps.CALLS == []
    assert journal.status == "planned"
    assert journal.ok
    assert {s.status for s in journal.steps} == {"planned"}
    assert [s.phase for s in journal.steps] == [
        "hypothesis_before", "method", "method", "hypothesis_after", "rollback",
    ]  # fmt: skip
    assert journal.steps[1].provider == "python tests.playbook.steps.act(label='inject')"


def test_journal_records_times_outputs_and_serializes(
    write_playbook: Callable[..., Playbook],
) -> None:
    seen: list[str] = []
    playbook = write_playbook(playbook_text(method=METHOD, rollbacks=ROLLBACK, criteria=CRITERIA))
    journal = run_playbook(playbook, on_step=lambda s: seen.append(s.name))
    assert seen == [s.name for s in journal.steps]
    inject = journal.steps_of("method")[0]
    assert inject.start.endswith("Z")
    assert inject.end >= inject.start
    assert inject.duration_s >= 0
    assert inject.output == {"done": "inject"}
    assert inject.exception is None
    document = json.loads(journal.to_json())
    assert document["status"] == "completed"
    assert document["configuration"] == {"steady_rate": 1.0, "during_rate": 0.995}
    assert document["steps"][2]["output"]["fallback"]["fallback_hit_rate"] == 0.97
    assert set(document["steps"][0]) >= {
        "status", "start", "end", "duration_s", "output", "exception",
    }  # fmt: skip
