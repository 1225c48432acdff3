"""The gate: what one monitor run decides for one rollout. Pure; no I/O, no clock.

For a **running** rollout, in order:

1. an attached SLO burning at page level (organic: the SLO's own records) → **rollback**;
2. a watched breaker open longer than ``breaker_open_max_s`` → **rollback**;
3. the candidate worse than stable over the stage's window (:mod:`shared.canary.compare`:
   Mann-Whitney on latency, Fisher on errors, each beyond its tolerance) → **rollback**;
4. too few samples in either cohort (inconclusive) → **hold**: never advance blind;
5. the stage younger than ``stage_min_s`` → **hold**;
6. otherwise **advance** to the next stage, or **complete** after the last one.

For a **halted** rollout, the recovery watch: every attached SLO healthy in this run and every
watched breaker closed counts one healthy window (anything else starts the count again); after
``recovery_windows`` in a row: **recovered**, else **watch**.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from shared.canary.compare import MetricVerdict
from shared.canary.policy import RolloutPolicy
from shared.canary.rollout import Rollout, advanced, recovered, rolled_back, watched

Verdict: TypeAlias = Literal["advance", "complete", "hold", "rollback", "watch", "recovered"]
#: Verdicts that change what users get or what the rollout is, and so are alerted.
ALERTED: Final[frozenset[Verdict]] = frozenset({"advance", "complete", "rollback", "recovered"})


@dataclass(frozen=True, slots=True)
class SloSignal:
    """One SLO as this monitor run judged it."""

    name: str
    healthy: bool
    page_burn: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Signals:
    """This run's SLO verdicts (by name) and breakers not closed (name → seconds not closed,
    the longest of any live instance)."""

    slos: Mapping[str, SloSignal] = field(default_factory=dict)
    breakers_open_s: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate versus stable over ``[start, end)`` (epoch seconds)."""

    start: float
    end: float
    latency: MetricVerdict
    errors: MetricVerdict
    candidate_requests: int
    stable_requests: int


@dataclass(frozen=True, slots=True)
class Decision:
    """A verdict for one rollout: who or what decided it (``gate``, ``slo:<name>``,
    ``breaker:<name>``, ``recovery``), why, and the numbers (JSON-ready)."""

    verdict: Verdict
    from_percent: int
    to_percent: int
    by: str
    reasons: tuple[str, ...]
    evidence: Mapping[str, object] = field(default_factory=dict)
    healthy_windows: int = 0


def decide(
    rollout: Rollout,
    signals: Signals,
    comparison: Comparison | None,
    policy: RolloutPolicy,
    now: float,
) -> Decision | None:
    """The decision for ``rollout`` now; None when there is nothing to decide (complete,
    recovered)."""
    if rollout.status == "running":
        return _running(rollout, signals, comparison, policy, now)
    if rollout.status == "halted":
        return _watching(rollout, signals, policy)
    return None


def _running(
    rollout: Rollout,
    signals: Signals,
    comparison: Comparison | None,
    policy: RolloutPolicy,
    now: float,
) -> Decision:
    percent = rollout.percent
    evidence = evidence_of(signals, comparison, rollout)
    for name in rollout.slos:
        slo = signals.slos.get(name)
        if slo is not None and slo.page_burn:
            reason = f"SLO {name} burning its error budget at page level: {slo.detail}"
            return Decision("rollback", percent, 0, f"slo:{name}", (reason,), evidence)
    for name, seconds in sorted(signals.breakers_open_s.items()):
        if rollout.watches(name) and seconds > policy.breaker_open_max_s:
            reason = (
                f"breaker {name} open for {seconds:.0f} s "
                f"(longer than {policy.breaker_open_max_s:g} s)"
            )
            return Decision("rollback", percent, 0, f"breaker:{name}", (reason,), evidence)
    if comparison is None:
        return Decision("hold", percent, percent, "gate", ("no comparison this run",), evidence)
    verdicts = (comparison.latency, comparison.errors)
    failed = [v.reason for v in verdicts if v.outcome == "fail"]
    if failed:
        return Decision("rollback", percent, 0, "gate", tuple(failed), evidence)
    if any(v.outcome == "inconclusive" for v in verdicts):
        reasons = tuple(dict.fromkeys(v.reason for v in verdicts if v.outcome == "inconclusive"))
        return Decision("hold", percent, percent, "gate", reasons, evidence)
    age = now - rollout.stage_started_at
    if age < policy.stage_min_s:
        shown = math.floor(age * 10) / 10  # never "3.0 s old of 3 s" for 2.98 s
        reason = (
            f"healthy, but the {percent}% stage is {shown:.1f} s old of {policy.stage_min_s:g} s"
        )
        return Decision("hold", percent, percent, "gate", (reason,), evidence)
    healthy = tuple(v.reason for v in verdicts)
    following = policy.next_stage(percent)
    if following is None or following >= 100:
        return Decision("complete", percent, 100, "gate", healthy, evidence)
    return Decision("advance", percent, following, "gate", healthy, evidence)


def _watching(rollout: Rollout, signals: Signals, policy: RolloutPolicy) -> Decision:
    problems: list[str] = []
    for name in rollout.slos:
        slo = signals.slos.get(name)
        if slo is None:
            problems.append(f"SLO {name} not judged this run")
        elif not slo.healthy:
            problems.append(f"SLO {name} unhealthy: {slo.detail}")
    for name, seconds in sorted(signals.breakers_open_s.items()):
        if rollout.watches(name):
            problems.append(f"breaker {name} not closed for {seconds:.0f} s")
    evidence = evidence_of(signals, None, rollout)
    if problems:
        return Decision("watch", 0, 0, "recovery", tuple(problems), evidence, 0)
    windows = rollout.healthy_windows + 1
    checked = ", ".join(rollout.slos) or "no SLOs attached"
    if windows >= policy.recovery_windows:
        reason = f"healthy for {windows} windows in a row ({checked}; breakers closed)"
        return Decision("recovered", 0, 0, "recovery", (reason,), evidence, windows)
    reason = f"healthy window {windows} of {policy.recovery_windows} ({checked})"
    return Decision("watch", 0, 0, "recovery", (reason,), evidence, windows)


def evidence_of(
    signals: Signals, comparison: Comparison | None, rollout: Rollout
) -> dict[str, object]:
    """The numbers behind a decision, as JSON values (no NaN)."""
    out: dict[str, object] = {
        "slos": {
            name: {"healthy": s.healthy, "page_burn": s.page_burn, "detail": s.detail}
            for name, s in signals.slos.items()
            if name in rollout.slos
        },
        "breakers_open_s": {
            name: round(seconds, 1)
            for name, seconds in signals.breakers_open_s.items()
            if rollout.watches(name)
        },
    }
    if comparison is not None:
        out["window"] = {"start": comparison.start, "end": comparison.end}
        out["requests"] = {
            "candidate": comparison.candidate_requests,
            "stable": comparison.stable_requests,
        }
        for verdict in (comparison.latency, comparison.errors):
            out[verdict.metric] = {
                "outcome": verdict.outcome,
                "p_value": _finite(verdict.p_value),
                "candidate": _finite(verdict.candidate),
                "stable": _finite(verdict.stable),
                "reason": verdict.reason,
            }
    return out


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


def applied(rollout: Rollout, decision: Decision, now: float) -> Rollout | None:
    """The rollout after ``decision`` (None: the document does not change)."""
    if decision.verdict in ("advance", "complete"):
        return advanced(rollout, decision.to_percent, now)
    if decision.verdict == "rollback":
        return rolled_back(rollout, reason="; ".join(decision.reasons), by=decision.by, now=now)
    if decision.verdict == "recovered":
        return recovered(rollout, now)
    if decision.verdict == "watch" and decision.healthy_windows != rollout.healthy_windows:
        return watched(rollout, decision.healthy_windows)
    return None
