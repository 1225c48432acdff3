"""Signals from the monitor's SLO results and from the instances' breaker heartbeats."""

from __future__ import annotations

from shared.canary.signals import breakers_open, slo_signals
from shared.slo.backends.local import LocalQuery
from shared.slo.burn_rate import FiredRule
from shared.slo.compute import SloResult
from shared.slo.config import BurnRateRule, Slo
from shared.slo.window import Window

PAGE = BurnRateRule("fast-burn", "page", 14.4, 3600, 300)
TICKET = BurnRateRule("budget-leak", "ticket", 1.0, 21600, 3600)
SLO = Slo("ask-errors", "graphAsk", "error_rate", "local", "good_bad_ratio", 0.99, 300,
          (PAGE, TICKET), LocalQuery(("graphAsk",)))  # fmt: skip
WINDOW = Window(0, 300)


def result(status: str, *fired: FiredRule) -> SloResult:
    return SloResult(SLO, WINDOW, status, 0.8, 100, {}, fired)  # type: ignore[arg-type]


def test_page_burns_and_health() -> None:
    signals = slo_signals([result("violation", FiredRule(PAGE, 20.0, 19.0))])
    page = signals["ask-errors"]
    assert (page.healthy, page.page_burn) == (False, True)
    assert page.detail == (
        "violation, 80% good (20% bad) vs good ratio > 99%; fast-burn 20.0x/19.0x > 14.4x"
    )
    ticket = slo_signals([result("ok", FiredRule(TICKET, 2.0, 2.0))])["ask-errors"]
    assert (ticket.healthy, ticket.page_burn) == (False, False)  # a ticket does not halt
    assert slo_signals([result("ok")])["ask-errors"].healthy
    assert not slo_signals([result("no_data")])["ask-errors"].healthy  # blind is not healthy


def test_breakers_open_is_the_longest_of_the_live_instances() -> None:
    beats = [
        {"at": 100.0, "breakers": {"llm:v2": {"state": "open", "open_since": 40.0},
                                   "graph": {"state": "closed", "open_since": None}}},
        {"at": 100.0, "breakers": {"llm:v2": {"state": "half-open", "open_since": 10.0}}},
        {"at": 100.0, "breakers": "garbage"},
    ]  # fmt: skip
    assert breakers_open(beats, 100.0) == {"llm:v2": 90.0}
