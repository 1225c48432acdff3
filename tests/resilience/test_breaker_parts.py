"""The circuit's parts as pure pieces: configuration, sliding window, storage outage."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.resilience.circuit import Circuit, CircuitConfig, breaker, reset_breakers
from shared.resilience.circuit.config import build_config
from shared.resilience.circuit.outage import FALLBACK_PROBE, UNTRACKED, Outage
from shared.resilience.circuit.states import Refused
from shared.resilience.circuit.window import SlidingWindow
from shared.resilience.clock import FakeClock
from shared.resilience.errors import ConfigError

# -- configuration -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    reset_breakers()
    yield
    reset_breakers()


def test_the_defaults_are_the_seeds() -> None:
    config = CircuitConfig()
    assert (config.fail_max, config.reset_timeout) == (4, 8.0)
    assert config.exclude == ()
    assert not config.counts_rates
    assert config.busy_retry_after == 1.0
    assert CircuitConfig(reset_timeout=0.25).busy_retry_after == 0.25


def test_only_fail_max_and_reset_timeout_are_positional() -> None:
    assert CircuitConfig(3, 2.0) == CircuitConfig(fail_max=3, reset_timeout=2.0)
    with pytest.raises(TypeError):
        CircuitConfig(3, 2.0, ())  # type: ignore[misc]


def test_exclude_takes_any_iterable_and_keeps_a_tuple() -> None:
    config = CircuitConfig(exclude=[KeyError, ValueError])  # type: ignore[arg-type]
    assert config.exclude == (KeyError, ValueError)
    assert config == CircuitConfig(exclude=(KeyError, ValueError))


def test_every_problem_is_reported_with_field_value_and_range() -> None:
    with pytest.raises(ConfigError) as info:
        CircuitConfig(fail_max=0, reset_timeout=-1, window_size=0, failure_rate_threshold=101)
    message = str(info.value)
    assert "fail_max=0: must be an int >= 1, or None" in message
    assert "reset_timeout=-1: must be > 0 seconds" in message
    assert "window_size=0: must be an int >= 1" in message
    assert "failure_rate_threshold=101: must be a percentage in (0, 100], or None" in message


def test_booleans_are_not_counts() -> None:
    with pytest.raises(ConfigError, match="success_threshold=True"):
        CircuitConfig(success_threshold=True)


def test_build_config_names_the_circuit_and_unknown_options() -> None:
    with pytest.raises(ConfigError, match=r"circuit 'dep': unknown option\(s\) failmax; valid: "):
        build_config("dep", failmax=3)
    with pytest.raises(ConfigError, match=r"circuit 'dep': fail_max=0"):
        build_config("dep", fail_max=0)
    with pytest.raises(ConfigError, match="name=''"):
        build_config("")


def test_replaced_and_differences() -> None:
    config = CircuitConfig(fail_max=3)
    same = config.replaced(fail_max=3)
    assert config.differences(same) == []
    other = config.replaced(fail_max=5, reset_timeout=1.0)
    assert config.differences(other) == [
        "fail_max=5 (existing: 3)",
        "reset_timeout=1.0 (existing: 8.0)",
    ]
    with pytest.raises(ConfigError, match="unknown option"):
        config.replaced(failmax=5)


def test_circuit_and_registry_build_the_same_config_from_the_same_arguments() -> None:
    options = {"fail_max": 2, "reset_timeout": 3.0, "failure_rate_threshold": 50.0}
    assert Circuit(name="a", **options).config == breaker("a", **options).config
    assert Circuit(2, 3.0, name="b").config == CircuitConfig(2, 3.0)


# -- sliding window ------------------------------------------------------------------------------


def test_the_window_slides_and_keeps_its_counts() -> None:
    window = SlidingWindow(3)
    assert (len(window), window.rate(window.failures)) == (0, None)
    for failed, slow in ((True, False), (True, True), (False, True)):
        window.add(failed, slow)
    assert (len(window), window.failures, window.slow) == (3, 2, 2)
    window.add(False, False)  # pushes out (failed, not slow)
    assert (len(window), window.failures, window.slow) == (3, 1, 2)
    assert window.rate(window.failures) == pytest.approx(100 / 3)


def test_the_verdict_needs_the_minimum_number_of_calls() -> None:
    window = SlidingWindow(10)
    for _ in range(4):
        window.add(True, False)
    assert window.verdict(5, 50.0, None) is None
    window.add(False, False)
    assert window.verdict(5, 50.0, None) == "failure rate 80.0% >= 50% over the last 5 calls"
    assert window.verdict(5, 90.0, None) is None
    assert window.verdict(5, None, None) is None


def test_the_verdict_on_slow_calls() -> None:
    window = SlidingWindow(4)
    for slow in (True, True, False, False):
        window.add(False, slow)
    assert window.verdict(4, 60.0, 50.0) == "slow-call rate 50.0% >= 50% over the last 4 calls"


# -- storage outage ------------------------------------------------------------------------------


def outage(clock: FakeClock, **options: object) -> Outage:
    return Outage(CircuitConfig(storage_retry_interval=2.0, **options), clock)  # type: ignore[arg-type]


def test_an_outage_lasts_the_retry_interval() -> None:
    clock = FakeClock()
    o = outage(clock)
    assert not o.active()
    o.begin()
    assert o.active()
    clock.advance(1.9)
    assert o.active()
    clock.advance(0.1)
    assert not o.active()  # over: the storage is tried again
    assert o.until == 0.0


def test_fallback_closed_admits_untracked_calls() -> None:
    o = outage(FakeClock())
    o.begin()
    assert o.admit() is UNTRACKED
    assert o.retry_after() == 0.0


def test_fallback_open_refuses_until_the_retry() -> None:
    clock = FakeClock()
    o = outage(clock, fallback_state="open")
    o.begin()
    clock.advance(0.5)
    with pytest.raises(Refused) as info:
        o.admit()
    assert info.value.retry_after == pytest.approx(1.5)
    assert o.retry_after() == pytest.approx(1.5)


def test_fallback_half_open_admits_bounded_probes() -> None:
    o = outage(FakeClock(), fallback_state="half-open", half_open_max_calls=2)
    o.begin()
    assert o.admit() is FALLBACK_PROBE
    assert o.admit() is FALLBACK_PROBE
    with pytest.raises(Refused) as info:
        o.admit()
    assert info.value.retry_after == 1.0
    o.release(FALLBACK_PROBE)
    o.release(UNTRACKED)  # holds no slot
    assert o.probes == 1
    assert o.admit() is FALLBACK_PROBE
