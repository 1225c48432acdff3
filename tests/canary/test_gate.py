"""The gate's decisions, as pure functions of a rollout, this run's signals and a comparison."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.canary import ComparisonPolicy, Decision, RolloutPolicy, Signals, SloSignal, decide
from shared.canary.compare import CohortSample, compare_errors, compare_latency
from shared.canary.gate import Comparison, applied
from shared.canary.rollout import Rollout, rolled_back, start

NOW = 1_800_000_000.0
POLICY = RolloutPolicy(stage_min_s=300, breaker_open_max_s=120, recovery_windows=3,
                       comparison=ComparisonPolicy(min_samples=50))  # fmt: skip
SLOS = ("ask-latency", "ask-errors")
OK = SloSignal("ask-latency", True, False, "ok")
OK_ERRORS = SloSignal("ask-errors", True, False, "ok")
HEALTHY = Signals({"ask-latency": OK, "ask-errors": OK_ERRORS})


def running(percent: int = 10, stage_age_s: float = 600.0, **extra: object) -> Rollout:
    rollout = start("ask-model", service="graphAsk", stable="v1", candidate="v2",
                    now=NOW - 3600, slos=SLOS)  # fmt: skip
    return replace(rollout, percent=percent, stage_started_at=NOW - stage_age_s, **extra)  # type: ignore[arg-type]


def comparison(
    candidate_ms: float = 100.0, stable_ms: float = 100.0, candidate_errors: int = 0,
    candidate_n: int = 200, stable_n: int = 2000,
) -> Comparison:  # fmt: skip
    cand = CohortSample(tuple(candidate_ms / 1000 * (1 + i % 10 / 10) for i in range(candidate_n)),
                        candidate_errors)  # fmt: skip
    stab = CohortSample(tuple(stable_ms / 1000 * (1 + i % 10 / 10) for i in range(stable_n)), 0)
    policy = POLICY.comparison
    return Comparison(NOW - 600, NOW, compare_latency(cand, stab, policy),
                      compare_errors(cand, stab, policy), cand.requests, stab.requests)  # fmt: skip


@pytest.mark.parametrize(
    ("case", "rollout", "signals", "compared", "verdict", "to", "by"),
    [
        ("healthy at 10 advances", running(10), HEALTHY, comparison(), "advance", 50, "gate"),
        ("healthy at 50 completes", running(50), HEALTHY, comparison(), "complete", 100, "gate"),
        ("a young stage holds", running(10, 60), HEALTHY, comparison(), "hold", 10, "gate"),
        ("too few samples hold", running(10), HEALTHY, comparison(candidate_n=20), "hold", 10,
         "gate"),
        ("slower candidate rolls back", running(10), HEALTHY, comparison(candidate_ms=400),
         "rollback", 0, "gate"),
        ("failing candidate rolls back", running(50), HEALTHY, comparison(candidate_errors=30),
         "rollback", 0, "gate"),
        ("a young stage still rolls back", running(10, 5), HEALTHY,
         comparison(candidate_ms=400), "rollback", 0, "gate"),
        ("no comparison holds", running(10), HEALTHY, None, "hold", 10, "gate"),
        ("page burn of an attached SLO", running(10),
         Signals({"ask-latency": SloSignal("ask-latency", False, True, "20x")}), comparison(),
         "rollback", 0, "slo:ask-latency"),
        ("page burn of another SLO is not ours", running(10),
         Signals({"other": SloSignal("other", False, True, "20x")}), comparison(),
         "advance", 50, "gate"),
        ("an unhealthy SLO without a page burn does not halt", running(10),
         Signals({"ask-latency": SloSignal("ask-latency", False, False, "ticket")}),
         comparison(), "advance", 50, "gate"),
        ("breaker open too long", running(10), Signals(breakers_open_s={"llm:v2": 121.0}),
         comparison(), "rollback", 0, "breaker:llm:v2"),
        ("breaker open briefly", running(10), Signals(breakers_open_s={"llm:v2": 119.0}),
         comparison(), "advance", 50, "gate"),
        ("an unwatched breaker", running(10, breakers=("graph",)),
         Signals(breakers_open_s={"llm:v2": 999.0}), comparison(), "advance", 50, "gate"),
    ],
)  # fmt: skip
def test_running_rollouts(
    case: str, rollout: Rollout, signals: Signals, compared: Comparison | None,
    verdict: str, to: int, by: str,
) -> None:  # fmt: skip
    decision = decide(rollout, signals, compared, POLICY, NOW)
    assert decision is not None
    assert (decision.verdict, decision.to_percent, decision.by) == (verdict, to, by), decision
    assert decision.from_percent == rollout.percent
    assert decision.reasons


def test_signals_before_the_comparison_and_the_reasons_carry_numbers() -> None:
    burning = Signals({"ask-latency": SloSignal("ask-latency", False, True, "fast-burn 20.0x")},
                      {"llm:v2": 500.0})  # fmt: skip
    decision = decide(running(), burning, comparison(candidate_ms=400), POLICY, NOW)
    assert decision is not None
    assert decision.by == "slo:ask-latency"
    assert decision.reasons == (
        "SLO ask-latency burning its error budget at page level: fast-burn 20.0x",
    )
    assert decision.evidence["breakers_open_s"] == {"llm:v2": 500.0}
    latency = decide(running(), HEALTHY, comparison(candidate_ms=400), POLICY, NOW)
    assert latency is not None
    assert latency.reasons[0].startswith("candidate p95 760 ms > stable p95 190 ms x 1.2")
    evidence = latency.evidence["latency"]
    assert isinstance(evidence, dict)
    assert evidence["outcome"] == "fail"
    assert evidence["p_value"] < 1e-6
    too_few = decide(running(), HEALTHY, comparison(candidate_n=3), POLICY, NOW)
    assert too_few is not None
    assert too_few.evidence["latency"] == {  # NaN is no JSON: None stands for "not measured"
        "outcome": "inconclusive", "p_value": None, "candidate": None, "stable": None,
        "reason": "too few requests to compare: candidate 3, stable 2000 (need 50 each)",
    }  # fmt: skip


def _halted(healthy_windows: int = 0) -> Rollout:
    return replace(rolled_back(running(), reason="x", by="gate", now=NOW - 60),
                   healthy_windows=healthy_windows)  # fmt: skip


@pytest.mark.parametrize(
    ("windows_before", "signals", "verdict", "windows_after"),
    [
        (0, HEALTHY, "watch", 1),
        (1, HEALTHY, "watch", 2),
        (2, HEALTHY, "recovered", 3),
        (2, Signals({"ask-latency": OK}), "watch", 0),  # ask-errors not judged: not healthy
        (2, Signals({"ask-latency": OK, "ask-errors": SloSignal("ask-errors", False, False, "v")}),
         "watch", 0),
        (2, Signals(HEALTHY.slos, {"graph": 1.0}), "watch", 0),
    ],
)  # fmt: skip
def test_recovery_watch(
    windows_before: int, signals: Signals, verdict: str, windows_after: int
) -> None:
    decision = decide(_halted(windows_before), signals, None, POLICY, NOW)
    assert decision is not None
    assert (decision.verdict, decision.healthy_windows) == (verdict, windows_after)


def test_nothing_to_decide_when_complete_or_recovered() -> None:
    assert decide(replace(running(), status="complete"), HEALTHY, None, POLICY, NOW) is None
    assert decide(replace(_halted(), status="recovered"), HEALTHY, None, POLICY, NOW) is None


def test_applying_decisions() -> None:
    rollout = running(10)
    advanced = applied(rollout, Decision("advance", 10, 50, "gate", ("ok",)), NOW)
    assert advanced is not None
    assert (advanced.percent, advanced.stage_started_at, advanced.status) == (50, NOW, "running")
    assert [(s.percent, s.outcome) for s in advanced.history] == [(10, "passed"), (50, "")]
    assert advanced.generation == rollout.generation + 1
    done = applied(advanced, Decision("complete", 50, 100, "gate", ("ok",)), NOW + 1)
    assert done is not None
    assert (done.status, done.stable, done.candidate, done.previous, done.percent) == (
        "complete", "v2", None, "v1", 100,
    )  # fmt: skip
    assert done.serving is None
    back = applied(rollout, Decision("rollback", 10, 0, "slo:a", ("burn", "more")), NOW)
    assert back is not None
    assert (back.status, back.percent, back.halted, back.halt_reason, back.halted_by) == (
        "halted", 0, True, "burn; more", "slo:a",
    )  # fmt: skip
    assert back.stable == "v1"
    assert back.serving is None
    assert back.history[-1].outcome == "rolled back"
    assert applied(rollout, Decision("hold", 10, 10, "gate", ("wait",)), NOW) is None
    unchanged = Decision("watch", 0, 0, "recovery", ("x",), healthy_windows=0)
    assert applied(back, unchanged, NOW) is None
    watched = applied(back, Decision("watch", 0, 0, "recovery", ("x",), healthy_windows=1), NOW)
    assert watched is not None
    assert watched.healthy_windows == 1
    recovered = applied(back, Decision("recovered", 0, 0, "recovery", ("x",), {}, 3), NOW)
    assert recovered is not None
    assert (recovered.status, recovered.recovered_at, recovered.halted) == ("recovered", NOW, True)


def test_serving_versions() -> None:
    assert running(10).serving == "v2"
    assert replace(running(10), percent=0).serving is None
