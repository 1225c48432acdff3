"""Retry: which errors are retried, backoff shape, deadline, Retry-After, events."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import requests
from google.api_core import exceptions as gexc
from hypothesis import given
from hypothesis import strategies as st

from shared.resilience import events
from shared.resilience.clock import FakeClock
from shared.resilience.errors import CircuitOpenError, ConfigError
from shared.resilience.retries import RetryPolicy, full_jitter, retry, retrying
from shared.resilience.transient import HttpStatusError, is_business_error, is_transient


def failing(errors: list[BaseException], result: Any = "ok") -> tuple[Callable[[], Any], list[int]]:
    """A function raising ``errors`` in turn, then returning ``result``; counts its calls."""
    calls = [0]

    def fn() -> Any:
        calls[0] += 1
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def test_success_first_time_calls_once_and_never_sleeps() -> None:
    clock = FakeClock()
    fn, calls = failing([])
    assert retry(fn, 3, clock=clock) == "ok"
    assert calls == [1]
    assert clock.sleeps == []


def test_transient_errors_are_retried_until_success() -> None:
    clock = FakeClock()
    fn, calls = failing([ConnectionError("reset"), HttpStatusError(503)])
    assert retry(fn, 3, clock=clock) == "ok"
    assert calls == [3]
    assert len(clock.sleeps) == 2


def test_exhaustion_reraises_the_last_error_and_reports_it() -> None:
    clock = FakeClock()
    rec = events.Recorder()
    last = HttpStatusError(502, "bad gateway")
    fn, calls = failing([TimeoutError("t"), HttpStatusError(500), last])
    with events.use_hooks(rec), pytest.raises(HttpStatusError) as info:
        retry(fn, 3, clock=clock, name="dep")
    assert info.value is last
    assert calls == [3]
    assert [e.attempt for e in rec.of(events.RetryScheduled)] == [1, 2]
    (gave_up,) = rec.of(events.RetryGaveUp)
    assert gave_up.name == "dep"
    assert gave_up.attempts == 3


@pytest.mark.parametrize(
    "exc",
    [
        HttpStatusError(400),
        HttpStatusError(404),
        HttpStatusError(401),
        ValueError("bad input"),
        CircuitOpenError("dep", 3.0),
        KeyError("x"),
    ],
)
def test_non_transient_errors_are_raised_at_once(exc: Exception) -> None:
    clock = FakeClock()
    fn, calls = failing([exc])
    with pytest.raises(type(exc)):
        retry(fn, 5, clock=clock)
    assert calls == [1]
    assert clock.sleeps == []


@pytest.mark.parametrize(
    "exc",
    [
        gexc.ResourceExhausted("quota"),
        gexc.ServiceUnavailable("down"),
        gexc.DeadlineExceeded("slow"),
        gexc.Aborted("contention"),
        gexc.InternalServerError("oops"),
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
        HttpStatusError(429),
        HttpStatusError(504),
    ],
)
def test_documented_transient_errors_are_retried(exc: Exception) -> None:
    assert is_transient(exc)
    fn, calls = failing([exc])
    assert retry(fn, 2, clock=FakeClock()) == "ok"
    assert calls == [2]


def test_google_client_errors_are_business_errors_but_quota_is_not() -> None:
    assert is_business_error(gexc.InvalidArgument("bad"))
    assert is_business_error(gexc.NotFound("gone"))
    assert not is_business_error(gexc.ResourceExhausted("quota"))
    assert not is_transient(gexc.InvalidArgument("bad"))


def test_requests_http_error_is_classified_by_its_response_status() -> None:
    for status, transient in [(503, True), (429, True), (400, False), (404, False)]:
        resp = requests.Response()
        resp.status_code = status
        err = requests.HTTPError(response=resp)
        assert is_transient(err) is transient
        assert is_business_error(err) is (not transient)


def test_waits_grow_exponentially_with_full_jitter_and_cap() -> None:
    clock = FakeClock()
    fn, _ = failing([ConnectionError()] * 6)
    rng = random.Random(7)
    retry(fn, 7, base=0.1, cap=0.5, clock=clock, rng=rng)
    expected_rng = random.Random(7)
    expected = [expected_rng.uniform(0, min(0.5, 0.1 * 2**n)) for n in range(6)]
    assert clock.sleeps == pytest.approx(expected)


@given(
    attempt=st.integers(1, 30),
    base=st.floats(0.001, 2.0),
    cap=st.floats(0.001, 60.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_full_jitter_is_within_zero_and_the_capped_ceiling(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    wait = full_jitter(attempt, base, cap, random.Random(seed))
    assert 0.0 <= wait <= min(cap, base * 2 ** (attempt - 1))


def test_retry_after_raises_the_wait_to_what_the_peer_asked() -> None:
    clock = FakeClock()
    fn, _ = failing([HttpStatusError(429, retry_after=2.5)])
    retry(fn, 3, base=0.01, cap=0.02, clock=clock)
    assert clock.sleeps == [2.5]


def test_retry_after_header_on_a_requests_response_is_honoured() -> None:
    resp = requests.Response()
    resp.status_code = 503
    resp.headers["Retry-After"] = "4"
    clock = FakeClock()
    fn, _ = failing([requests.HTTPError(response=resp)])
    retry(fn, 2, base=0.01, cap=0.02, clock=clock)
    assert clock.sleeps == [4.0]


def test_deadline_stops_before_a_wait_that_would_cross_it() -> None:
    clock = FakeClock()
    fn, calls = failing([HttpStatusError(503, retry_after=1.0)] * 10)
    with pytest.raises(HttpStatusError):
        retry(fn, 10, base=0.01, cap=0.02, deadline=3.5, clock=clock)
    # 1 s per wait: attempts at t=0,1,2,3; the next wait would end at 4 s > 3.5 s.
    assert calls == [4]
    assert sum(clock.sleeps) <= 3.5


def test_deadline_counts_time_spent_inside_calls() -> None:
    clock = FakeClock()
    calls = [0]

    def slow_failure() -> str:
        calls[0] += 1
        clock.advance(2.0)
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError):
        retry(slow_failure, 10, base=0.01, cap=0.01, deadline=5.0, clock=clock)
    assert calls == [3]


def test_decorator_form_passes_arguments_and_retries() -> None:
    clock = FakeClock()
    seen: list[tuple[int, str]] = []
    errors: list[Exception] = [ConnectionError()]

    @retrying(attempts=2, clock=clock)
    def add(a: int, b: str = "x") -> str:
        seen.append((a, b))
        if errors:
            raise errors.pop()
        return f"{a}{b}"

    assert add(1, b="y") == "1y"
    assert seen == [(1, "y"), (1, "y")]
    assert add.__name__ == "add"


def test_custom_retry_on_predicate() -> None:
    fn, calls = failing([ValueError("flaky parser")])
    assert retry(fn, 2, retry_on=lambda e: isinstance(e, ValueError), clock=FakeClock()) == "ok"
    assert calls == [2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"attempts": 0}, "attempts must be an integer >= 1, got 0"),
        ({"base": 0}, "base must be > 0 seconds, got 0"),
        ({"base": 1.0, "cap": 0.5}, "cap must be >= base (1.0) seconds, got 0.5"),
        ({"deadline": -1}, "deadline must be > 0 seconds or None, got -1"),
    ],
)
def test_invalid_configuration_is_refused_with_the_valid_range(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        retry(lambda: 1, **kwargs)
    assert str(info.value) == message
    with pytest.raises(ConfigError):
        RetryPolicy(**kwargs)


def test_single_attempt_means_no_retry() -> None:
    fn, calls = failing([ConnectionError()])
    with pytest.raises(ConnectionError):
        retry(fn, 1, clock=FakeClock())
    assert calls == [1]


def test_keyboard_interrupt_is_never_swallowed() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retry(interrupted, 3, clock=FakeClock())


def test_policy_object_is_reusable() -> None:
    clock = FakeClock()
    policy = RetryPolicy(attempts=2, clock=clock)
    fn, calls = failing([ConnectionError(), ConnectionError()], result=5)
    with pytest.raises(ConnectionError):
        policy.call(fn)
    assert policy.call(fn) == 5
    assert calls == [3]
