"""Breaker outside retry: an exhausted retry sequence is one breaker failure."""

from __future__ import annotations

import pytest

from shared.resilience.circuit import Circuit
from shared.resilience.clock import FakeClock
from shared.resilience.compose import with_breaker, with_breaker_and_retry
from shared.resilience.errors import CircuitOpenError
from shared.resilience.transient import HttpStatusError


def test_with_breaker_passes_results_through() -> None:
    breaker = Circuit(fail_max=4, reset_timeout=8.0, name="compose-ok", clock=FakeClock())
    assert with_breaker(breaker, lambda: 42) == 42


def test_one_exhausted_retry_sequence_counts_once_and_four_trip_the_breaker() -> None:
    clock = FakeClock()
    breaker = Circuit(fail_max=4, reset_timeout=8.0, name="compose-trip", clock=clock)
    calls = [0]

    def down() -> None:
        calls[0] += 1
        raise HttpStatusError(503)

    for sequence in range(4):
        assert breaker.state == "closed", sequence
        with pytest.raises(HttpStatusError):
            with_breaker_and_retry(breaker, down, 3, clock=clock)
    assert calls == [12]  # 4 sequences x 3 attempts
    assert breaker.state == "open"

    # Open: refused at once, the function is not called and no retry loop runs.
    sleeps_before = len(clock.sleeps)
    with pytest.raises(CircuitOpenError):
        with_breaker_and_retry(breaker, down, 3, clock=clock)
    assert calls == [12]
    assert len(clock.sleeps) == sleeps_before


def test_recovered_dependency_closes_the_breaker_after_reset_timeout() -> None:
    clock = FakeClock()
    breaker = Circuit(fail_max=4, reset_timeout=8.0, name="compose-heal", clock=clock)
    healthy = [False]

    def dep() -> str:
        if not healthy[0]:
            raise ConnectionError("down")
        return "up"

    for _ in range(4):
        with pytest.raises(ConnectionError):
            with_breaker_and_retry(breaker, dep, 2, clock=clock)
    assert breaker.state == "open"
    healthy[0] = True
    clock.advance(8.01)
    assert with_breaker_and_retry(breaker, dep, 2, clock=clock) == "up"
    assert breaker.state == "closed"


def test_a_retry_that_succeeds_is_a_breaker_success() -> None:
    clock = FakeClock()
    breaker = Circuit(fail_max=1, reset_timeout=8.0, name="compose-flaky", clock=clock)
    errors = [TimeoutError("t")]

    def flaky() -> str:
        if errors:
            raise errors.pop()
        return "ok"

    assert with_breaker_and_retry(breaker, flaky, 3, clock=clock) == "ok"
    assert breaker.state == "closed"


def test_business_errors_neither_retry_nor_trip() -> None:
    clock = FakeClock()
    breaker = Circuit(fail_max=1, reset_timeout=8.0, name="compose-400", clock=clock)
    calls = [0]

    def bad_request() -> None:
        calls[0] += 1
        raise HttpStatusError(400, "bad prompt")

    for _ in range(3):
        with pytest.raises(HttpStatusError):
            with_breaker_and_retry(breaker, bad_request, 3, clock=clock)
    assert calls == [3]
    assert breaker.state == "closed"
