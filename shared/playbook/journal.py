"""The journal of a run: every step's status, start, end, duration, output and exception.

All records are frozen dataclasses; :meth:`Journal.to_json` writes them as JSON (instants as
RFC 3339 UTC strings, durations in seconds). Outputs that JSON cannot represent are written with
``repr``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Phase: TypeAlias = Literal["hypothesis_before", "method", "hypothesis_after", "rollback"]
StepStatus: TypeAlias = Literal["succeeded", "failed", "planned"]
RunStatus: TypeAlias = Literal["completed", "deviated", "failed", "interrupted", "planned"]


def rfc3339(epoch_s: float) -> str:
    """``epoch_s`` as an RFC 3339 UTC instant with milliseconds."""
    moment = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One activity as it ran. ``tolerance_met`` is None for activities without a tolerance."""

    phase: Phase
    name: str
    type: str
    provider: str
    status: StepStatus
    start: str
    end: str
    duration_s: float
    output: Any = None
    exception: str | None = None
    tolerance: str | None = None
    tolerance_met: bool | None = None
    tolerance_reason: str = ""


@dataclass(frozen=True, slots=True)
class CriterionRecord:
    """One success criterion: the value looked at and whether it was within the tolerance."""

    name: str
    probe: str
    tolerance: str
    met: bool
    actual: Any = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Journal:
    """A whole run. ``status``:

    - ``completed``: the hypothesis held before and after, every criterion was met;
    - ``deviated``: the hypothesis did not hold after the method, or a criterion was not met;
    - ``failed``: the steady state did not hold before, or a method activity failed;
    - ``interrupted``: stopped (SIGINT) before the end; rollbacks still ran;
    - ``planned``: a dry run (nothing was called).
    """

    title: str
    source: str
    status: RunStatus
    dry_run: bool
    start: str
    end: str
    duration_s: float
    steady_state_before: bool | None
    steady_state_after: bool | None
    criteria_met: bool | None
    rollbacks_succeeded: bool
    steps: tuple[StepRecord, ...]
    criteria: tuple[CriterionRecord, ...]
    configuration: dict[str, Any]

    @property
    def ok(self) -> bool:
        """True when the run proved the hypothesis (or was a dry run) and rollbacks succeeded."""
        return self.status in ("completed", "planned") and self.rollbacks_succeeded

    def steps_of(self, phase: Phase) -> tuple[StepRecord, ...]:
        """The steps of one phase, in order."""
        return tuple(s for s in self.steps if s.phase == phase)

    def as_dict(self) -> dict[str, Any]:
        """The journal as plain dicts and lists."""
        return dataclasses.asdict(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        """The journal as JSON text."""
        return json.dumps(self.as_dict(), indent=indent, default=repr, sort_keys=False)
