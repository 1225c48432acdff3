"""Circuit breaker, in memory, on a FakeClock: the seed's behaviour, exclusions, rate trips,
events, control, registry and configuration errors."""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator
from typing import Any

import pybreaker
import pytest

from shared.resilience import events
from shared.resilience.circuit import (
    BreakerStats,
    Circuit,
    MemoryStorage,
    RedisStorage,
    breaker,
    breakers,
    reset_breakers,
)
from shared.resilience.clock import FakeClock
from shared.resilience.errors import CircuitOpenError, ConfigError
from shared.resilience.transient import HttpStatusError
from tests.resilience.breaker_conftest_helpers import (
    Boom,
    bad_request,
    fail,
    ok,
    outcome,
    recording,
    transitions,
    trip,
)


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


def seed_circuit(clock: FakeClock, **options: Any) -> Circuit:
    """The seed's ``new Circuit(4, 8000)``."""
    return Circuit(4, 8.0, name=options.pop("name", "dep"), clock=clock, **options)


# -- the seed's behaviour ------------------------------------------------------------------------


def test_four_consecutive_failures_open_it_for_eight_seconds(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    for n in range(3):
        assert outcome(circuit, fail()) == "Boom"
        assert circuit.state == "closed", n
    assert outcome(circuit, fail()) == "Boom"  # the 4th failure is re-raised, then it opens
    assert circuit.state == "open"
    assert circuit.retry_after() == pytest.approx(8.0)

    called = []
    with pytest.raises(CircuitOpenError) as info:
        circuit.call(lambda: called.append(1))
    assert called == []
    assert info.value.name == "dep"
    assert info.value.retry_after == pytest.approx(8.0)

    clock.advance(7.9)
    assert outcome(circuit, ok()) == "rejected"
    assert circuit.retry_after() == pytest.approx(0.1)
    clock.advance(0.1)
    assert circuit.state == "half-open"
    assert circuit.retry_after() == 0.0
    assert circuit.call(ok(7)) == 7
    assert circuit.state == "closed"


def test_a_failed_probe_opens_it_for_another_full_period(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    trip(circuit, 4)
    clock.advance(8.0)
    assert outcome(circuit, fail()) == "Boom"
    assert circuit.state == "open"
    assert circuit.retry_after() == pytest.approx(8.0)
    clock.advance(8.0)
    assert outcome(circuit, ok()) == "ok"
    assert circuit.state == "closed"


def test_a_success_resets_the_consecutive_count(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    for _ in range(5):
        trip(circuit, 3)
        assert outcome(circuit, ok()) == "ok"
    assert circuit.state == "closed"
    assert circuit.stats().consecutive_failures == 0


def test_results_and_arguments_pass_through(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    assert circuit.call(lambda a, b=0: a + b, 2, b=3) == 5


def test_the_exception_is_re_raised_unchanged_with_its_traceback(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    error = Boom("x")

    def raiser() -> None:
        raise error

    for _ in range(4):  # the last one trips the circuit inside pybreaker's state machine
        with pytest.raises(Boom) as info:
            circuit.call(raiser)
        assert info.value is error
        frames = [tb.name for tb in info.traceback]
        assert frames[-1] == "raiser"
        assert not any("pybreaker" in str(tb.path) for tb in info.traceback)


def test_success_threshold_needs_that_many_probe_successes(clock: FakeClock) -> None:
    circuit = seed_circuit(clock, success_threshold=3)
    trip(circuit, 4)
    clock.advance(8.0)
    for _ in range(2):
        assert outcome(circuit, ok()) == "ok"
        assert circuit.state == "half-open"
        assert circuit.stats().half_open_successes >= 1
    assert outcome(circuit, ok()) == "ok"
    assert circuit.state == "closed"


def test_decorator_keeps_the_function_name_and_guards_it(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)

    @circuit
    def fetch(x: int) -> int:
        """Doc."""
        if x < 0:
            raise Boom("negative")
        return x * 2

    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Doc."
    assert fetch(4) == 8
    for _ in range(4):
        with pytest.raises(Boom):
            fetch(-1)
    with pytest.raises(CircuitOpenError):
        fetch(1)


def test_nested_calls_through_the_same_circuit_do_not_deadlock(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    assert circuit.call(lambda: circuit.call(lambda: circuit.call(ok(3)))) == 3


def test_outcomes_of_calls_admitted_before_a_transition_are_ignored(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)

    def slow_failure() -> None:
        # While this call runs, four other calls trip the circuit; time passes.
        trip(circuit, 4)
        clock.advance(3.0)
        raise Boom("late")

    assert outcome(circuit, slow_failure) == "Boom"
    assert circuit.state == "open"
    # The late failure did not restart the open period (opened 3 s ago, 5 s left).
    assert circuit.retry_after() == pytest.approx(5.0)

    clock.advance(5.0)

    def probe_meanwhile_late_success() -> str:
        return "ok"

    # A call admitted as the probe counts; a call admitted while closed that ends now does not.
    assert circuit.call(probe_meanwhile_late_success) == "ok"
    assert circuit.state == "closed"


# -- exclusions ----------------------------------------------------------------------------------


def test_business_errors_pass_through_and_count_as_success(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    trip(circuit, 3)
    for _ in range(10):
        with pytest.raises(HttpStatusError) as info:
            circuit.call(bad_request)
        assert info.value.status_code == 400
    assert circuit.state == "closed"
    assert circuit.stats().consecutive_failures == 0  # the 400 reset the count


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_statuses_count_as_failures(clock: FakeClock, status: int) -> None:
    circuit = seed_circuit(clock)
    for _ in range(4):
        assert outcome(circuit, fail(HttpStatusError(status))) == "HttpStatusError"
    assert circuit.state == "open"


def test_a_business_error_from_a_probe_closes_it(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    trip(circuit, 4)
    clock.advance(8.0)
    assert outcome(circuit, bad_request) == "HttpStatusError"
    assert circuit.state == "closed"


def test_exclude_accepts_types_and_predicates(clock: FakeClock) -> None:
    class NotFound(Exception):
        pass

    circuit = seed_circuit(
        clock, exclude=(KeyError, lambda e: isinstance(e, ValueError) and "skip" in str(e))
    )
    for _ in range(10):
        assert outcome(circuit, fail(KeyError("k"))) == "KeyError"
        assert outcome(circuit, fail(ValueError("skip me"))) == "ValueError"
        assert outcome(circuit, bad_request) == "HttpStatusError"  # the default stays
    assert circuit.state == "closed"
    trip_errors = [ValueError("count me"), NotFound(), RuntimeError(), Boom()]
    for exc in trip_errors:
        assert outcome(circuit, fail(exc)) == type(exc).__name__
    assert circuit.state == "open"


def test_business_error_exclusion_can_be_turned_off(clock: FakeClock) -> None:
    circuit = seed_circuit(clock, exclude_business_errors=False)
    for _ in range(4):
        assert outcome(circuit, bad_request) == "HttpStatusError"
    assert circuit.state == "open"


def test_an_exception_class_with_a_metaclass_is_matched_as_a_type(clock: FakeClock) -> None:
    # pybreaker tests ``type(rule) is type`` and would call such a class as a predicate,
    # excluding every exception.
    class AbcError(Exception, metaclass=abc.ABCMeta):
        pass

    circuit = seed_circuit(clock, exclude=(AbcError,))
    assert outcome(circuit, fail(AbcError())) == "AbcError"
    trip(circuit, 4)
    assert circuit.state == "open"


def test_a_failing_predicate_counts_the_error_and_is_logged(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(exc: BaseException) -> bool:
        raise RuntimeError("bug in predicate")

    circuit = seed_circuit(clock, exclude=(broken,))
    with caplog.at_level(logging.ERROR, logger="shared.resilience.circuit"):
        trip(circuit, 4)
    assert circuit.state == "open"
    assert "exclude predicate" in caplog.text


def test_base_exceptions_count_and_propagate(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    for _ in range(4):
        with pytest.raises(KeyboardInterrupt):
            circuit.call(fail(KeyboardInterrupt()))
    assert circuit.state == "open"


# -- rate-based trips ----------------------------------------------------------------------------


def test_failure_rate_trips_once_minimum_calls_are_recorded(clock: FakeClock) -> None:
    circuit = Circuit(
        None, 8.0, name="rate", clock=clock, failure_rate_threshold=50, window_size=10,
        minimum_calls=6,
    )  # fmt: skip
    # Alternating: never 4 in a row, but 50 %.
    for i in range(5):
        assert outcome(circuit, fail() if i % 2 else ok()) in {"ok", "Boom"}
    assert circuit.state == "closed"  # 2 of 5: below the minimum number of calls anyway
    assert outcome(circuit, fail()) == "Boom"  # 3 of 6 = 50 %
    assert circuit.state == "open"
    clock.advance(8.0)
    assert outcome(circuit, ok()) == "ok"
    assert circuit.state == "closed"
    stats = circuit.stats()
    assert stats.window_calls == 0  # the window restarts after a transition


def test_failure_rate_uses_a_sliding_window_of_the_last_calls(clock: FakeClock) -> None:
    circuit = Circuit(
        None, 8.0, name="rate", clock=clock, failure_rate_threshold=60, window_size=5,
        minimum_calls=5,
    )  # fmt: skip
    for fn in (fail(), fail(), ok(), ok(), ok()):
        outcome(circuit, fn)
    assert circuit.stats().failure_rate == pytest.approx(40.0)
    # Failures push out old outcomes: [F, ok, ok, ok, F] -> [ok, ok, F, F, F]
    for _ in range(2):
        outcome(circuit, fail())
        assert circuit.state == "closed"
    stats = circuit.stats()
    assert (stats.window_calls, stats.window_failures) == (5, 2)
    outcome(circuit, fail())
    assert circuit.state == "open"


def test_consecutive_and_rate_rules_both_apply(clock: FakeClock) -> None:
    circuit = seed_circuit(clock, failure_rate_threshold=90, minimum_calls=20)
    trip(circuit, 4)
    assert circuit.state == "open"


def test_slow_call_rate_trips_on_the_injected_clock(clock: FakeClock) -> None:
    circuit = Circuit(
        4, 8.0, name="slow", clock=clock, slow_call_rate_threshold=50, slow_call_duration=1.0,
        window_size=4, minimum_calls=4,
    )  # fmt: skip

    def taking(seconds: float) -> Any:
        def run() -> str:
            clock.advance(seconds)
            return "done"

        return run

    for seconds in (0.5, 2.0, 1.0, 0.1):  # 1.0 is not slower than 1.0: 1 of 4 slow
        assert circuit.call(taking(seconds)) == "done"
    assert circuit.state == "closed"
    assert circuit.stats().slow_call_rate == pytest.approx(25.0)
    assert circuit.call(taking(1.5)) == "done"  # [2.0, 1.0, 0.1, 1.5]: 2 of 4
    assert circuit.state == "open"

    clock.advance(8.0)
    assert circuit.call(taking(3.0)) == "done"  # a slow probe succeeds but re-opens it
    assert circuit.state == "open"
    clock.advance(8.0)
    assert circuit.call(taking(0.2)) == "done"
    assert circuit.state == "closed"


def test_business_errors_count_as_successes_in_the_window(clock: FakeClock) -> None:
    circuit = Circuit(
        None, 8.0, name="rate", clock=clock, failure_rate_threshold=50, minimum_calls=4
    )
    for _ in range(20):
        outcome(circuit, bad_request)
        outcome(circuit, fail())
        outcome(circuit, bad_request)
    assert circuit.state == "closed"
    assert circuit.stats().failure_rate == pytest.approx(100.0 / 3, rel=0.05)


# -- events --------------------------------------------------------------------------------------


def test_every_transition_and_refusal_is_an_event_and_successes_are_silent(
    clock: FakeClock,
) -> None:
    circuit = seed_circuit(clock, name="ev")
    with recording() as rec:
        for _ in range(100):
            circuit.call(ok())
        assert rec.events == []
        trip(circuit, 4)
        outcome(circuit, ok())
        clock.advance(8.0)
        outcome(circuit, fail())
        clock.advance(8.0)
        outcome(circuit, ok())
    assert transitions(rec) == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    reasons = [e.reason for e in rec.of(events.BreakerStateChanged)]
    assert reasons[0].startswith("4 consecutive failures")
    assert reasons[1] == "reset timeout of 8 s elapsed"
    assert reasons[2].startswith("probe failed")
    assert reasons[4] == "probe succeeded"
    (rejected,) = rec.of(events.BreakerRejected)
    assert rejected.name == "ev"
    assert rejected.retry_after == pytest.approx(8.0)
    assert all(e.name == "ev" for e in rec.events)


def test_events_feed_the_metrics(clock: FakeClock) -> None:
    circuit = seed_circuit(clock, name="metered")
    trip(circuit, 4)
    outcome(circuit, ok())
    outcome(circuit, ok())
    snap = events.METRICS.snapshot()
    assert snap["breakers"] == {"open": ["metered"], "rejected": 2}


def test_a_hook_may_read_the_circuit_while_handling_its_event(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    seen: list[str] = []

    def hook(event: events.Event) -> None:
        if isinstance(event, events.BreakerStateChanged | events.BreakerRejected):
            seen.append(circuit.state)

    with events.use_hooks(hook):
        trip(circuit, 4)
        outcome(circuit, ok())
    assert seen == ["open", "open"]


# -- control and inspection ----------------------------------------------------------------------


def test_force_open_and_reset(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    with recording() as rec:
        circuit.open()
        assert circuit.state == "open"
        assert outcome(circuit, ok()) == "rejected"
        circuit.reset()
        assert circuit.state == "closed"
        assert outcome(circuit, ok()) == "ok"
        circuit.close()  # already closed: no event
    reasons = [(e.new_state, e.reason) for e in rec.of(events.BreakerStateChanged)]
    assert reasons == [("open", "forced open"), ("closed", "reset")]


def test_reset_clears_the_counters(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    trip(circuit, 3)
    circuit.reset()
    trip(circuit, 3)
    assert circuit.state == "closed"


def test_stats_is_a_frozen_snapshot(clock: FakeClock) -> None:
    circuit = seed_circuit(clock, name="snap", failure_rate_threshold=50)
    trip(circuit, 2)
    stats = circuit.stats()
    assert isinstance(stats, BreakerStats)
    assert stats.name == "snap"
    assert stats.state == "closed"
    assert stats.consecutive_failures == 2
    assert (stats.window_calls, stats.window_failures) == (2, 2)
    assert stats.failure_rate == pytest.approx(100.0)
    assert stats.storage == "MemoryStorage"
    assert stats.storage_ok
    with pytest.raises(AttributeError):
        stats.state = "open"  # type: ignore[misc]
    trip(circuit, 2)
    stats = circuit.stats()
    assert stats.state == "open"
    assert stats.opened_at == clock.monotonic()
    assert stats.retry_after == pytest.approx(8.0)
    clock.advance(8.0)
    assert circuit.stats().state == "half-open"


def test_state_reads_have_no_side_effects(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    trip(circuit, 4)
    clock.advance(9.0)
    with recording() as rec:
        for _ in range(3):
            assert circuit.state == "half-open"
            circuit.stats()
            circuit.retry_after()
    assert rec.events == []


# -- storage compatibility with pybreaker ----------------------------------------------------------


def test_memory_storage_drives_a_plain_pybreaker() -> None:
    storage = MemoryStorage("plain")
    cb = pybreaker.CircuitBreaker(fail_max=2, reset_timeout=60, state_storage=storage)
    for _ in range(2):
        with pytest.raises((Boom, pybreaker.CircuitBreakerError)):
            cb.call(fail())
    assert storage.state == "open"
    assert storage.opened_at is not None
    with pytest.raises(pybreaker.CircuitBreakerError):
        cb.call(ok())


def test_two_circuits_on_one_memory_storage_act_as_one(clock: FakeClock) -> None:
    storage = MemoryStorage("one")
    a = Circuit(4, 8.0, name="one", storage=storage, clock=clock)
    b = Circuit(4, 8.0, name="one", storage=storage, clock=clock)
    trip(a, 2)
    trip(b, 2)
    assert a.state == b.state == "open"
    assert outcome(b, ok()) == "rejected"


# -- registry ------------------------------------------------------------------------------------


def test_registry_gets_or_creates_one_circuit_per_name() -> None:
    first = breaker("llm:a", fail_max=3, reset_timeout=5.0)
    assert breaker("llm:a") is first
    assert breaker("llm:a", fail_max=3) is first
    other = breaker("llm:b")
    assert other is not first
    assert other.config.fail_max == 4  # the seed's defaults
    assert other.config.reset_timeout == 8.0
    assert list(breakers()) == ["llm:a", "llm:b"]
    assert breakers()["llm:a"] is first
    reset_breakers()
    assert breakers() == {}
    assert breaker("llm:a") is not first


def test_registry_rejects_another_configuration_for_an_existing_name() -> None:
    breaker("dep", fail_max=3)
    with pytest.raises(ConfigError, match=r"fail_max=5 \(existing: 3\)"):
        breaker("dep", fail_max=5)
    with pytest.raises(ConfigError, match="reset_timeout"):
        breaker("dep", reset_timeout=1.0)


def test_registry_rejects_unknown_options() -> None:
    with pytest.raises(ConfigError, match=r"unknown option.*failmax"):
        breaker("dep", failmax=3)


def test_registry_accepts_a_new_redis_storage_object_for_the_same_key() -> None:
    client = object()  # nothing is sent at construction
    first = breaker("r", storage=RedisStorage(client, "r"))
    assert breaker("r", storage=RedisStorage(client, "r")) is first
    with pytest.raises(ConfigError, match="storage"):
        breaker("r", storage=RedisStorage(client, "other"))


def test_registry_is_safe_under_threads() -> None:
    import threading

    got: list[Circuit] = []
    barrier = threading.Barrier(8)

    def get() -> None:
        barrier.wait()
        got.append(breaker("shared", fail_max=4))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in got}) == 1


# -- configuration errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fail_max": 0}, "fail_max"),
        ({"fail_max": None}, "fail_max=None needs"),
        ({"reset_timeout": 0}, "reset_timeout"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"half_open_max_calls": 0}, "half_open_max_calls"),
        ({"window_size": 0}, "window_size"),
        ({"failure_rate_threshold": 0}, "percentage"),
        ({"failure_rate_threshold": 150}, "percentage"),
        ({"slow_call_rate_threshold": 50}, "go together"),
        ({"slow_call_duration": 1.0}, "go together"),
        ({"fallback_state": "ajar"}, "fallback_state"),
        ({"storage": {}}, "storage must be"),
        ({"exclude": (int,)}, "not an exception type"),
        ({"exclude": ("x",)}, "neither"),
        ({"storage_retry_interval": 0}, "storage_retry_interval"),
    ],
)
def test_invalid_configuration_is_a_clear_config_error(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Circuit(name="bad", **options)


def test_config_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="fail_max"):
        Circuit(fail_max=-1)


def test_construction_touches_no_storage() -> None:
    class Exploding:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"client used at construction: {name}")

    Circuit(name="lazy", storage=RedisStorage(Exploding(), "lazy"))


def test_circuit_open_error_is_not_pybreakers(clock: FakeClock) -> None:
    circuit = seed_circuit(clock)
    trip(circuit, 4)
    with pytest.raises(CircuitOpenError) as info:
        circuit.call(ok())
    assert not isinstance(info.value, pybreaker.CircuitBreakerError)
