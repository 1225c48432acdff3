"""The rollout document ``rollout/<name>`` as a value, and its transitions as pure functions.

A rollout moves one service from ``stable`` to ``candidate`` (a model name or a policy id) in
stages: ``percent`` of users (by :mod:`shared.canary.cohort`) get the candidate. Its status:

* ``running``: a stage is in progress (``percent`` > 0, ``stage_started_at`` its start);
* ``complete``: the last stage passed; the candidate became ``stable`` (``previous`` keeps the
  old version for an operator's rollback) and ``candidate`` is empty;
* ``halted``: rolled back: ``percent`` 0, every user on ``stable`` again, ``halted`` with
  ``halt_reason`` and ``halted_by``; the monitor watches for recovery;
* ``recovered``: halted, and the attached SLOs were healthy with every breaker closed for the
  policy's number of windows in a row (``recovered_at``). A halted or recovered rollout never
  advances: a new rollout (``start``) is needed.

``generation`` grows with every change; the store writes a change only over the generation it
was decided on, so two monitor runs never apply two decisions to one state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, TypeAlias

from shared.canary.errors import CanaryConfigError
from shared.canary.policy import DEFAULT_STAGES, check_stages

Status: TypeAlias = Literal["running", "complete", "halted", "recovered"]
STATUSES: Final[tuple[Status, ...]] = ("running", "complete", "halted", "recovered")
#: Statuses the monitor still acts on (the gate, or the recovery watch).
ACTIVE: Final[tuple[Status, ...]] = ("running", "halted")
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}\Z")


def check_name(name: str, what: str = "rollout name") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise CanaryConfigError(
            f"{what} must be 1-63 lowercase letters, digits, '.', '_' or '-', got {name!r}"
        )
    return name


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage of the history: its percent, when it began and ended (epoch s), and how."""

    percent: int
    started_at: float
    ended_at: float | None = None
    outcome: str = ""


@dataclass(frozen=True, slots=True)
class Rollout:
    """The document ``rollout/<name>``; times are epoch seconds."""

    name: str
    service: str
    stable: str
    candidate: str | None
    percent: int
    status: Status
    stages: tuple[int, ...] = DEFAULT_STAGES
    slos: tuple[str, ...] = ()
    breakers: tuple[str, ...] = ()
    started_at: float = 0.0
    stage_started_at: float = 0.0
    history: tuple[Stage, ...] = ()
    halted: bool = False
    halt_reason: str = ""
    halted_by: str = ""
    halted_at: float | None = None
    healthy_windows: int = 0
    recovered_at: float | None = None
    previous: str | None = None
    generation: int = 0

    @property
    def serving(self) -> str | None:
        """The version the candidate cohort gets now (None: everyone is on stable)."""
        return self.candidate if self.status == "running" and self.percent > 0 else None

    def watches(self, breaker: str) -> bool:
        """Whether an open ``breaker`` concerns this rollout (no list: every breaker does)."""
        return not self.breakers or breaker in self.breakers


def start(
    name: str,
    *,
    service: str,
    stable: str,
    candidate: str,
    now: float,
    stages: Sequence[int] = DEFAULT_STAGES,
    slos: Sequence[str] = (),
    breakers: Sequence[str] = (),
    generation: int = 0,
) -> Rollout:
    """A new rollout, at its first stage from ``now``."""
    check_name(name)
    plan = check_stages(stages)
    for label, value in (("service", service), ("stable", stable), ("candidate", candidate)):
        if not isinstance(value, str) or not value.strip():
            raise CanaryConfigError(f"{label} must be a non-empty string, got {value!r}")
    if stable == candidate:
        raise CanaryConfigError(f"candidate must differ from stable, both are {stable!r}")
    return Rollout(
        name=name, service=service, stable=stable, candidate=candidate, percent=plan[0],
        status="running", stages=plan, slos=tuple(slos), breakers=tuple(breakers),
        started_at=now, stage_started_at=now, history=(Stage(plan[0], now),),
        generation=generation + 1,
    )  # fmt: skip


def _close_stage(rollout: Rollout, now: float, outcome: str) -> tuple[Stage, ...]:
    if not rollout.history:
        return ()
    last = replace(rollout.history[-1], ended_at=now, outcome=outcome)
    return (*rollout.history[:-1], last)


def advanced(rollout: Rollout, percent: int, now: float) -> Rollout:
    """The next stage at ``percent`` from ``now``; at 100 the rollout completes."""
    history = _close_stage(rollout, now, "passed")
    if percent >= 100:
        return replace(
            rollout, stable=rollout.candidate or rollout.stable, candidate=None,
            previous=rollout.stable, percent=100, status="complete", history=history,
            stage_started_at=now, generation=rollout.generation + 1,
        )  # fmt: skip
    return replace(
        rollout, percent=percent, stage_started_at=now,
        history=(*history, Stage(percent, now)), generation=rollout.generation + 1,
    )  # fmt: skip


def rolled_back(rollout: Rollout, *, reason: str, by: str, now: float) -> Rollout:
    """Every user back on stable: percent 0, halted, the recovery watch begins."""
    return replace(
        rollout, percent=0, status="halted", halted=True, halt_reason=reason, halted_by=by,
        halted_at=now, healthy_windows=0, history=_close_stage(rollout, now, "rolled back"),
        generation=rollout.generation + 1,
    )  # fmt: skip


def watched(rollout: Rollout, healthy_windows: int) -> Rollout:
    """The recovery watch's count of healthy windows in a row."""
    return replace(rollout, healthy_windows=healthy_windows, generation=rollout.generation + 1)


def recovered(rollout: Rollout, now: float) -> Rollout:
    """Recovery declared: the rollout stays halted (a new one must be started)."""
    return replace(rollout, status="recovered", recovered_at=now, generation=rollout.generation + 1)


# -- Firestore shape -------------------------------------------------------------------------


def to_document(rollout: Rollout) -> dict[str, Any]:
    """The fields stored in ``rollout/<name>`` (the store adds ``updated_at``)."""
    return {
        "service": rollout.service,
        "stable": rollout.stable,
        "candidate": rollout.candidate,
        "percent": rollout.percent,
        "status": rollout.status,
        "stages": list(rollout.stages),
        "slos": list(rollout.slos),
        "breakers": list(rollout.breakers),
        "started_at": rollout.started_at,
        "stage_started_at": rollout.stage_started_at,
        "history": [_stage_document(s) for s in rollout.history],
        "halted": rollout.halted,
        "halt_reason": rollout.halt_reason,
        "halted_by": rollout.halted_by,
        "halted_at": rollout.halted_at,
        "healthy_windows": rollout.healthy_windows,
        "recovered_at": rollout.recovered_at,
        "previous": rollout.previous,
        "generation": rollout.generation,
    }


def _stage_document(stage: Stage) -> dict[str, Any]:
    return {
        "percent": stage.percent,
        "started_at": stage.started_at,
        "ended_at": stage.ended_at,
        "outcome": stage.outcome,
    }


def _stage(data: Mapping[str, Any]) -> Stage:
    ended = data.get("ended_at")
    return Stage(
        int(data["percent"]),
        float(data["started_at"]),
        None if ended is None else float(ended),
        str(data.get("outcome", "")),
    )


def from_document(name: str, data: Mapping[str, Any]) -> Rollout:
    """A Rollout from a stored document; CanaryConfigError when it is malformed."""
    try:
        status = str(data["status"])
        if status not in STATUSES:
            raise ValueError(f"status {status!r}")
        candidate = data.get("candidate")
        return Rollout(
            name=name,
            service=str(data["service"]),
            stable=str(data["stable"]),
            candidate=None if candidate is None else str(candidate),
            percent=int(data["percent"]),
            status=status,  # checked against STATUSES above
            stages=tuple(int(s) for s in data.get("stages", DEFAULT_STAGES)),
            slos=tuple(str(s) for s in data.get("slos", ())),
            breakers=tuple(str(b) for b in data.get("breakers", ())),
            started_at=float(data.get("started_at", 0.0)),
            stage_started_at=float(data.get("stage_started_at", 0.0)),
            history=tuple(_stage(s) for s in data.get("history", ())),
            halted=bool(data.get("halted", False)),
            halt_reason=str(data.get("halt_reason", "")),
            halted_by=str(data.get("halted_by", "")),
            halted_at=None if data.get("halted_at") is None else float(data["halted_at"]),
            healthy_windows=int(data.get("healthy_windows", 0)),
            recovered_at=None if data.get("recovered_at") is None else float(data["recovered_at"]),
            previous=None if data.get("previous") is None else str(data["previous"]),
            generation=int(data.get("generation", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CanaryConfigError(f"rollout/{name} is malformed ({exc!r})") from exc
