"""The canary controller: evaluate the gate against the live rollout and apply the verdict.

One :meth:`CanaryController.step` per evaluation window. Observations are tied to the percent
they were measured at (``observed_percent``): when the rollout has moved since (a retry after a
step that already applied, or another controller), the step holds and changes nothing. Together
with the targets' compare-and-set this makes retries idempotent. Every decision is emitted as a
:class:`CanaryDecided` event (logged by the default hooks) and recorded in the journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from shared.canary.errors import RolloutConflict, RolloutHalted
from shared.canary.gate import DEFAULT_STAGES, Decision, Observation, Thresholds, evaluate
from shared.canary.targets import RolloutState, RolloutTarget
from shared.resilience import events


@dataclass(frozen=True, slots=True)
class CanaryDecided(events.Event):
    """A canary decision was taken (and applied). ``name`` is the rollout."""

    kind: ClassVar[str] = "canary.decision"
    severity: ClassVar[str] = "WARNING"
    verdict: str
    version: str
    from_percent: int
    to_percent: int
    reasons: tuple[str, ...]
    breaches: tuple[str, ...] = ()


class DecisionJournal(Protocol):
    """Keeps every decision with the state it left (Firestore: ``rollout/<name>/decisions``)."""

    def record(self, decision: Decision, state: RolloutState, *, at: float) -> None: ...


@dataclass(frozen=True, slots=True)
class StepResult:
    """A decision and the rollout state after applying it."""

    decision: Decision
    state: RolloutState


class CanaryController:
    """Applies the gate to one rollout through a :class:`RolloutTarget`."""

    def __init__(
        self,
        target: RolloutTarget,
        thresholds: Thresholds,
        *,
        stages: Sequence[int] = DEFAULT_STAGES,
        journal: DecisionJournal | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.thresholds = thresholds
        self.stages = tuple(stages)
        self.journal = journal
        self._clock = clock

    def step(
        self,
        canary: Observation,
        *,
        observed_percent: int,
        baseline: Observation | None = None,
    ) -> StepResult:
        """Evaluate observations taken while the canary served ``observed_percent`` and apply."""
        state = self.target.state()
        if state.halted:
            decision = Decision(
                "hold",
                state.percent,
                state.percent,
                (f"rollout halted: {state.halt_reason}",),
            )
            return self._finish(decision, state)
        if state.percent != observed_percent:
            decision = Decision(
                "hold",
                state.percent,
                state.percent,
                (
                    f"stale observations: taken at {observed_percent}% but the rollout is at "
                    f"{state.percent}%; nothing changed",
                ),
            )
            return self._finish(decision, state)
        decision = evaluate(
            state.percent, canary, self.thresholds, baseline=baseline, stages=self.stages
        )
        if decision.verdict == "rollback":
            state = self.target.rollback("; ".join(decision.reasons))
        elif decision.verdict == "advance":
            try:
                state = self.target.set_percent(
                    decision.next_percent, expected_percent=decision.current_percent
                )
            except (RolloutHalted, RolloutConflict) as exc:
                state = self.target.state()
                decision = Decision("hold", state.percent, state.percent, (str(exc),))
        return self._finish(decision, state)

    def _finish(self, decision: Decision, state: RolloutState) -> StepResult:
        events.emit(
            CanaryDecided(
                state.name,
                verdict=decision.verdict,
                version=(state.rolled_back_version or state.version)
                if decision.verdict == "rollback"
                else state.version,
                from_percent=decision.current_percent,
                to_percent=state.percent,
                reasons=decision.reasons,
                breaches=decision.breaches,
            )
        )
        if self.journal is not None:
            self.journal.record(decision, state, at=self._clock())
        return StepResult(decision, state)
