"""Run a validated playbook: hypothesis before → method → hypothesis after → rollbacks.

Rollbacks always run: after a failed method, a deviated hypothesis, or an interruption (SIGINT,
or ``stop`` being set). A method activity that fails ends the method (nothing more is injected
into a system that already misbehaves). Success criteria are evaluated against the outputs of
the method's probes. ``dry_run`` validates nothing more (the playbook already is) and calls
nothing: the journal lists the plan with status ``planned``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.playbook.journal import (
    CriterionRecord,
    Journal,
    Phase,
    RunStatus,
    StepRecord,
    rfc3339,
)
from shared.playbook.model import Activity, Playbook, Provider
from shared.playbook.providers import run_provider
from shared.playbook.tolerance import check

StepHook = Callable[[StepRecord], None]
"""Called with each step record as soon as the step ends (progress output, logs)."""


class _Stopped(Exception):
    """The run was asked to stop while waiting."""


@dataclass
class _Run:
    playbook: Playbook
    stop: threading.Event
    clock: Callable[[], float]
    on_step: StepHook | None
    steps: list[StepRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    failed_probes: set[str] = field(default_factory=set)


def run_playbook(
    playbook: Playbook,
    *,
    dry_run: bool = False,
    stop: threading.Event | None = None,
    on_step: StepHook | None = None,
    clock: Callable[[], float] = time.time,
) -> Journal:
    """Run ``playbook`` and return its journal; never raises for a failing activity.

    ``stop`` set from elsewhere (a signal handler) interrupts the run at the next pause or wait;
    a ``KeyboardInterrupt`` raised inside an activity interrupts it too. Either way the
    rollbacks run before this returns.
    """
    run = _Run(playbook, stop or threading.Event(), clock, on_step)
    started = clock()
    if dry_run:
        return _plan(run, started)
    status: RunStatus = "completed"
    before: bool | None = None
    after: bool | None = None
    criteria: tuple[CriterionRecord, ...] = ()
    try:
        before = _hypothesis(run, "hypothesis_before")
        if before is False:
            status = "failed"
        else:
            method_ok = _method(run)
            if not method_ok:
                status = "failed"
            else:
                after = _hypothesis(run, "hypothesis_after")
                criteria = _criteria(run)
                if after is False or not all(c.met for c in criteria):
                    status = "deviated"
    except (KeyboardInterrupt, _Stopped):
        status = "interrupted"
        run.stop.set()
    rollbacks_ok = _rollbacks(run)
    ended = clock()
    return Journal(
        title=playbook.title,
        source=playbook.source,
        status=status,
        dry_run=False,
        start=rfc3339(started),
        end=rfc3339(ended),
        duration_s=round(ended - started, 6),
        steady_state_before=before,
        steady_state_after=after,
        criteria_met=all(c.met for c in criteria) if criteria else None,
        rollbacks_succeeded=rollbacks_ok,
        steps=tuple(run.steps),
        criteria=criteria,
        configuration=dict(playbook.configuration),
    )


def _hypothesis(run: _Run, phase: Phase) -> bool | None:
    hypothesis = run.playbook.hypothesis
    if hypothesis is None:
        return None
    held = True
    for probe in hypothesis.probes:
        record = _activity(run, probe, phase, _interruptible(run.stop))
        held = held and record.status == "succeeded" and record.tolerance_met is True
    return held


def _method(run: _Run) -> bool:
    for activity in run.playbook.method:
        record = _activity(run, activity, "method", _interruptible(run.stop))
        if record.status != "succeeded":
            return False
    return True


def _criteria(run: _Run) -> tuple[CriterionRecord, ...]:
    out = []
    for criterion in run.playbook.success_criteria:
        if criterion.probe in run.failed_probes or criterion.probe not in run.outputs:
            out.append(
                CriterionRecord(
                    criterion.name,
                    criterion.probe,
                    criterion.tolerance.describe(),
                    False,
                    reason=f"probe {criterion.probe!r} failed",
                )
            )
            continue
        result = check(criterion.tolerance, run.outputs[criterion.probe])
        out.append(
            CriterionRecord(
                criterion.name,
                criterion.probe,
                criterion.tolerance.describe(),
                result.met,
                result.actual,
                result.reason,
            )
        )
    return tuple(out)


def _rollbacks(run: _Run) -> bool:
    ok = True
    # Rollbacks must finish: they get their own, never-set stop event and plain sleeps.
    quiet = threading.Event()
    for action in run.playbook.rollbacks:
        try:
            record = _activity(run, action, "rollback", time.sleep, stop=quiet)
        except KeyboardInterrupt:
            ok = False
            continue
        ok = ok and record.status == "succeeded"
    return ok


def _interruptible(stop: threading.Event) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        if seconds > 0 and stop.wait(seconds):
            raise _Stopped
        if stop.is_set():
            raise _Stopped

    return sleep


def _activity(
    run: _Run,
    activity: Activity,
    phase: Phase,
    sleep: Callable[[float], None],
    *,
    stop: threading.Event | None = None,
) -> StepRecord:
    sleep(activity.pauses.before)
    start = run.clock()
    output: Any = None
    exception: str | None = None
    interrupted: BaseException | None = None
    try:
        output = run_provider(activity.provider, sleep=sleep, stop=stop or run.stop)
    except (KeyboardInterrupt, _Stopped) as exc:
        interrupted = exc
        exception = "interrupted"
    except Exception as exc:  # noqa: BLE001  (any activity failure is journaled, never raised)
        exception = f"{type(exc).__name__}: {exc}"
    end = run.clock()
    met: bool | None = None
    reason = ""
    if activity.tolerance is not None and exception is None:
        result = check(activity.tolerance, output)
        met, reason = result.met, result.reason
    elif activity.tolerance is not None:
        met, reason = False, "the probe failed"
    record = StepRecord(
        phase=phase,
        name=activity.name,
        type=activity.type,
        provider=describe_provider(activity.provider),
        status="succeeded" if exception is None else "failed",
        start=rfc3339(start),
        end=rfc3339(end),
        duration_s=round(end - start, 6),
        output=_jsonable(output),
        exception=exception,
        tolerance=activity.tolerance.describe() if activity.tolerance else None,
        tolerance_met=met,
        tolerance_reason=reason,
    )
    _record(run, record)
    if phase == "method" and activity.type == "probe":
        if exception is None:
            run.outputs[activity.name] = output
        else:
            run.failed_probes.add(activity.name)
    if interrupted is not None:
        raise interrupted
    sleep(activity.pauses.after)
    return record


def _record(run: _Run, record: StepRecord) -> None:
    run.steps.append(record)
    if run.on_step is not None:
        run.on_step(record)


def _plan(run: _Run, started: float) -> Journal:
    playbook = run.playbook
    phases: list[tuple[Phase, tuple[Activity, ...]]] = []
    if playbook.hypothesis is not None:
        phases.append(("hypothesis_before", playbook.hypothesis.probes))
    phases.append(("method", playbook.method))
    if playbook.hypothesis is not None:
        phases.append(("hypothesis_after", playbook.hypothesis.probes))
    phases.append(("rollback", playbook.rollbacks))
    stamp = rfc3339(started)
    for phase, activities in phases:
        for activity in activities:
            _record(
                run,
                StepRecord(
                    phase=phase,
                    name=activity.name,
                    type=activity.type,
                    provider=describe_provider(activity.provider),
                    status="planned",
                    start=stamp,
                    end=stamp,
                    duration_s=0.0,
                    tolerance=activity.tolerance.describe() if activity.tolerance else None,
                ),
            )
    return Journal(
        title=playbook.title,
        source=playbook.source,
        status="planned",
        dry_run=True,
        start=stamp,
        end=stamp,
        duration_s=0.0,
        steady_state_before=None,
        steady_state_after=None,
        criteria_met=None,
        rollbacks_succeeded=True,
        steps=tuple(run.steps),
        criteria=tuple(
            CriterionRecord(c.name, c.probe, c.tolerance.describe(), False, reason="not run")
            for c in playbook.success_criteria
        ),
        configuration=dict(playbook.configuration),
    )


def describe_provider(provider: Provider) -> str:
    """One line saying what the provider would do: ``http POST http://…/_experiments``."""
    if provider.type == "http":
        return f"http {provider.method} {provider.url}"
    if provider.type == "python":
        args = ", ".join(f"{k}={v!r}" for k, v in provider.arguments.items())
        return f"python {provider.func}({args})"
    if provider.type == "load":
        return (
            f"load {provider.method} {provider.url} at {provider.rate_rps:g} rps for "
            f"{provider.duration_s:g} s (concurrency {provider.concurrency}, "
            f"at most {provider.max_requests} requests)"
        )
    return f"sleep {provider.seconds:g} s"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    as_dict = getattr(value, "as_dict", None)
    if callable(as_dict):
        return _jsonable(as_dict())
    return repr(value)
