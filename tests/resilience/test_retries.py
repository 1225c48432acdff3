"""Retry: which errors are retried, backoff shape, deadline, Retry-After, events."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
import requests
import tenacity
from google.api_core import exceptions as gexc
from hypothesis import given
from hypothesis import strategies as st

from shared.resilience import events
from shared.resilience.clock import FakeClock
from shared.resilience.errors import CircuitOpenError, ConfigError
from shared.resilience.retries import RetryPolicy, retry, retrying, wait_retry_after
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


def test_waits_grow_exponentially_to_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every draw at the top of its range shows the ceiling: base·2ⁿ⁻¹, capped.
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    clock = FakeClock()
    fn, _ = failing([ConnectionError()] * 6)
    retry(fn, 7, base=0.1, cap=0.5, clock=clock)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5, 0.5])


def test_waits_are_full_jitter_between_zero_and_the_ceiling() -> None:
    clock = FakeClock()
    fn, _ = failing([ConnectionError()] * 200)
    retry(fn, 201, base=0.1, cap=0.4, clock=clock)
    ceilings = [min(0.4, 0.1 * 2**n) for n in range(200)]
    assert all(0.0 <= w <= c for w, c in zip(clock.sleeps, ceilings, strict=True))
    late = clock.sleeps[2:]  # all drawn from U(0, 0.4)
    # Spread over the range, not a fixed delay.
    assert min(late) < 0.1
    assert max(late) > 0.3


def state_after(failure: BaseException | None, attempt: int = 1) -> tenacity.RetryCallState:
    """A retry state whose attempt ``attempt`` raised ``failure`` (or returned, when None)."""
    state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
    state.attempt_number = attempt
    if failure is None:
        state.set_result("ok")
    else:
        state.set_exception((type(failure), failure, None))
    return state


def response_error(status: int, retry_after: str) -> requests.HTTPError:
    resp = requests.Response()
    resp.status_code = status
    resp.headers["Retry-After"] = retry_after
    return requests.HTTPError(response=resp)


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (HttpStatusError(429, retry_after=2.5), 2.5),  # the peer asks for more: its wish
        (HttpStatusError(503, retry_after=0.1), 0.3),  # asks for less: the backoff stands
        (HttpStatusError(503), 0.3),  # says nothing
        (ConnectionError("reset"), 0.3),
        (response_error(503, "4"), 4.0),  # a Retry-After header in seconds
        (response_error(429, "Wed, 21 Oct 2015 07:28:00 GMT"), 0.3),  # a date in the past
        (response_error(503, "soon"), 0.3),  # unparseable: ignored
        (None, 0.3),  # no failure at all
    ],
)
def test_wait_retry_after_is_the_larger_of_backoff_and_the_peers_wish(
    failure: BaseException | None, expected: float
) -> None:
    wait = wait_retry_after(tenacity.wait_fixed(0.3))
    assert wait(state_after(failure)) == pytest.approx(expected)


@given(
    attempt=st.integers(1, 40),
    multiplier=st.floats(0.001, 5.0),
    cap=st.floats(0.001, 60.0),
    asked=st.none() | st.floats(0.0, 3600.0),
)
def test_wait_retry_after_never_waits_less_than_either_rule(
    attempt: int, multiplier: float, cap: float, asked: float | None
) -> None:
    backoff = tenacity.wait_exponential(multiplier=multiplier, max=cap)
    state = state_after(HttpStatusError(503, retry_after=asked), attempt=attempt)
    expected = backoff(state) if asked is None else max(backoff(state), asked)
    assert wait_retry_after(backoff)(state) == expected


def test_wait_retry_after_passes_the_state_to_the_backoff_it_raises() -> None:
    wait = wait_retry_after(tenacity.wait_exponential(multiplier=1, max=60))
    assert wait(state_after(HttpStatusError(503), attempt=4)) == 8.0
    assert wait(state_after(HttpStatusError(503, retry_after=10), attempt=4)) == 10.0


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


def test_a_retry_after_past_the_deadline_gives_up_without_waiting() -> None:
    clock = FakeClock()
    rec = events.Recorder()
    fn, calls = failing([HttpStatusError(503, retry_after=30.0)])
    with events.use_hooks(rec), pytest.raises(HttpStatusError):
        retry(fn, 5, deadline=10.0, clock=clock, name="slow-peer")
    assert calls == [1]
    assert clock.sleeps == []
    assert [(e.name, e.attempts) for e in rec.of(events.RetryGaveUp)] == [("slow-peer", 1)]


def test_each_attempt_is_one_real_call_and_the_last_failure_is_raised_as_is() -> None:
    """Attempt one is the call that failed, not a replay: every failure is a distinct call."""
    clock = FakeClock()
    raised: list[Exception] = []

    def fn() -> None:
        raised.append(TimeoutError(f"attempt {len(raised) + 1}"))
        raise raised[-1]

    with pytest.raises(TimeoutError) as info:
        retry(fn, 3, clock=clock)
    assert [str(e) for e in raised] == ["attempt 1", "attempt 2", "attempt 3"]
    assert info.value is raised[-1]
    assert info.value.__context__ is None  # not chained onto an earlier attempt


def test_events_carry_the_attempt_the_wait_and_the_error() -> None:
    clock = FakeClock()
    rec = events.Recorder()
    fn, _ = failing([HttpStatusError(503, retry_after=1.5), ConnectionError("reset")])
    with events.use_hooks(rec):
        assert retry(fn, 3, base=0.01, cap=0.01, clock=clock, name="dep") == "ok"
    scheduled = rec.of(events.RetryScheduled)
    assert [(e.name, e.attempt) for e in scheduled] == [("dep", 1), ("dep", 2)]
    assert scheduled[0].wait == 1.5
    assert [e.wait for e in scheduled] == clock.sleeps
    assert "503" in scheduled[0].error
    assert "reset" in scheduled[1].error
    assert rec.of(events.RetryGaveUp) == []


def test_gave_up_reports_the_elapsed_seconds_on_the_injected_clock() -> None:
    clock = FakeClock()
    rec = events.Recorder()

    def slow_failure() -> None:
        clock.advance(1.0)
        raise TimeoutError("slow")

    with events.use_hooks(rec), pytest.raises(TimeoutError):
        retry(slow_failure, 2, base=0.5, cap=0.5, deadline=30.0, clock=clock)
    (gave_up,) = rec.of(events.RetryGaveUp)
    assert gave_up.elapsed == pytest.approx(2.0 + sum(clock.sleeps))


def test_retry_and_retrying_share_one_set_of_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # every wait 0.01 s
    clock = FakeClock()
    options: dict[str, Any] = {
        "base": 0.01,
        "cap": 0.01,
        "deadline": 0.055,  # attempts at 0, 0.01, ... 0.05; the next would start at 0.06
        "retry_on": lambda e: isinstance(e, ValueError),
        "name": "same",
        "clock": clock,
    }
    direct, direct_calls = failing([ValueError("x")] * 100)
    with pytest.raises(ValueError):
        retry(direct, 100, **options)
    inner, decorated_calls = failing([ValueError("x")] * 100)
    with pytest.raises(ValueError):
        retrying(100, **options)(inner)()
    assert direct_calls == decorated_calls == [6]
    with pytest.raises(ConfigError, match="deadline"):
        retrying(3, deadline=0)


def test_decorated_functions_are_named_after_themselves_in_events() -> None:
    clock = FakeClock()
    rec = events.Recorder()
    errors: list[Exception] = [ConnectionError()]

    @retrying(2, clock=clock)
    def fetch() -> str:
        if errors:
            raise errors.pop()
        return "ok"

    with events.use_hooks(rec):
        assert fetch() == "ok"
    assert [e.name for e in rec.of(events.RetryScheduled)] == [
        "test_decorated_functions_are_named_after_themselves_in_events.<locals>.fetch"
    ]


def test_retry_on_never_retries_an_interrupt_even_when_asked_to() -> None:
    errors: list[BaseException] = [ConnectionError(), KeyboardInterrupt()]
    fn, calls = failing(errors)
    with pytest.raises(KeyboardInterrupt):
        retry(fn, 5, retry_on=lambda e: True, clock=FakeClock())
    assert calls == [2]


def test_an_unhashable_predicate_still_works() -> None:
    class OnlyValueErrors:
        __hash__ = None  # type: ignore[assignment]

        def __call__(self, exc: BaseException) -> bool:
            return isinstance(exc, ValueError)

    fn, calls = failing([ValueError("flaky")])
    assert retry(fn, 2, retry_on=OnlyValueErrors(), clock=FakeClock()) == "ok"
    assert calls == [2]
    with pytest.raises(TypeError):
        retry(fn, 2, unknown=1)  # type: ignore[call-arg]
