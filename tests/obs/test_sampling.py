"""The request-log sampler: failures always, bursts in full, a binomially right sample otherwise."""

from __future__ import annotations

import math
import random
import threading

import pytest

from shared.obs.sampling import (
    RequestLogSampler,
    SamplingConfig,
    SamplingConfigError,
    sampling_from_env,
)
from shared.settings import Env, SettingsError


def config_from_env(environ: dict[str, str]) -> SamplingConfig:
    env = Env(environ)
    config = sampling_from_env(env)
    env.check()
    return config


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def never() -> float:
    """An rng whose draw is never below a rate < 1: no success is sampled."""
    return 0.999999


def quiet(**changes: float) -> SamplingConfig:
    return SamplingConfig(**{"sample_rate": 0.0, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [500, 503, 404, 429, 302, 304, 100, 444, 499])
def test_non_2xx_is_always_logged(status: int) -> None:
    sampler = RequestLogSampler(rng=never, clock=Clock())
    assert sampler.should_log(status, 1.0, quiet())


def test_slow_requests_are_logged_and_fast_ones_sampled_away() -> None:
    sampler = RequestLogSampler(rng=never, clock=Clock())
    config = quiet(slow_ms=250.0)
    assert sampler.should_log(200, 250.0, config)
    assert not sampler.should_log(200, 249.9, config)


@pytest.mark.parametrize(("rate", "expected"), [(1.0, True), (0.0, False)])
def test_rate_one_logs_everything_and_zero_nothing(rate: float, expected: bool) -> None:
    draws = iter([0.0, 0.5, 0.999999] * 10)
    sampler = RequestLogSampler(rng=lambda: next(draws), clock=Clock())
    config = SamplingConfig(sample_rate=rate)
    assert [sampler.should_log(200, 1.0, config) for _ in range(30)] == [expected] * 30


def test_sample_rate_is_statistically_right() -> None:
    n, rate = 20_000, 0.1
    sampler = RequestLogSampler(rng=random.Random(7).random, clock=Clock())
    config = SamplingConfig(sample_rate=rate)
    logged = sum(sampler.should_log(200, 1.0, config) for _ in range(n))
    sd = math.sqrt(n * rate * (1 - rate))
    assert abs(logged - n * rate) <= 5 * sd  # a false failure has probability < 1e-6


def test_a_burst_of_errors_logs_everything_until_it_falls_back() -> None:
    clock = Clock()
    sampler = RequestLogSampler(rng=never, clock=clock)
    config = quiet(error_burst=0.05, window_requests=100)
    for _ in range(100):
        assert not sampler.should_log(200, 1.0, config)
    for _ in range(5):  # 5 errors in the last 100: 5 %
        assert sampler.should_log(500, 1.0, config)
    assert sampler.error_rate(config) == pytest.approx(0.05)
    for _ in range(95):  # the 5 errors are still among the last 100
        assert sampler.should_log(200, 1.0, config)
    # The first error leaves the window: 4 %, below the threshold.
    assert not sampler.should_log(200, 1.0, config)
    assert sampler.error_rate(config) == pytest.approx(0.04)


def test_errors_older_than_the_window_stop_the_burst() -> None:
    clock = Clock()
    sampler = RequestLogSampler(rng=never, clock=clock)
    config = quiet(error_burst=0.01, window_s=60.0)
    assert sampler.should_log(503, 1.0, config)
    clock.now += 30.0
    assert sampler.should_log(200, 1.0, config)  # 1 error in 2 requests
    clock.now += 31.0  # the error is 61 s old; the success 31 s
    assert not sampler.should_log(200, 1.0, config)
    assert sampler.error_rate(config) == 0.0


def test_a_single_error_in_a_large_window_is_not_a_burst() -> None:
    sampler = RequestLogSampler(rng=never, clock=Clock())
    config = quiet(error_burst=0.01, window_requests=200)
    for _ in range(199):
        sampler.should_log(200, 1.0, config)
    assert sampler.should_log(500, 1.0, config)  # logged for itself: 1 / 200 = 0.5 %
    assert not sampler.should_log(200, 1.0, config)


def test_concurrent_calls_keep_the_window_consistent() -> None:
    sampler = RequestLogSampler(rng=never, clock=Clock())
    config = quiet(error_burst=1.0, window_requests=1000)

    def work() -> None:
        for i in range(2000):
            sampler.should_log(500 if i % 4 == 0 else 200, 1.0, config)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sampler.error_rate(config) == pytest.approx(0.25, abs=0.01)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sample_rate": 1.5}, "sample_rate must be a number from 0 to 1"),
        ({"sample_rate": -0.1}, "sample_rate must be a number from 0 to 1"),
        ({"error_burst": float("nan")}, "error_burst must be a number from 0 to 1"),
        ({"slow_ms": -1.0}, "slow_ms must be a finite number of ms >= 0"),
        ({"slow_ms": float("inf")}, "slow_ms must be a finite number of ms >= 0"),
        ({"window_requests": 0}, "window_requests must be an integer >= 1"),
        ({"window_s": 0.0}, "window_s must be a finite number of seconds > 0"),
    ],
)
def test_config_validation_names_the_setting(changes: dict[str, float], message: str) -> None:
    with pytest.raises(SamplingConfigError, match=message):
        SamplingConfig(**changes)  # type: ignore[arg-type]


def test_config_from_env_reads_the_three_variables() -> None:
    config = config_from_env(
        {
            "REQUEST_LOG_SAMPLE_RATE": "0.25",
            "REQUEST_LOG_SLOW_MS": "500",
            "REQUEST_LOG_ERROR_BURST": " 0.2 ",
        }
    )
    assert (config.sample_rate, config.slow_ms, config.error_burst) == (0.25, 500.0, 0.2)
    assert config_from_env({}) == SamplingConfig()
    assert config_from_env({"REQUEST_LOG_SAMPLE_RATE": ""}) == SamplingConfig()


@pytest.mark.parametrize(
    ("name", "raw", "allowed"),
    [
        ("REQUEST_LOG_SAMPLE_RATE", "often", "a number from 0 to 1"),
        ("REQUEST_LOG_SAMPLE_RATE", "2", "a number from 0 to 1"),
        ("REQUEST_LOG_SLOW_MS", "-5", "a number from 0 to 3.6e+06"),
        ("REQUEST_LOG_SLOW_MS", "inf", "a number from 0 to 3.6e+06"),
        ("REQUEST_LOG_ERROR_BURST", "nan", "a number from 0 to 1"),
    ],
)
def test_an_invalid_variable_is_named_with_its_range(name: str, raw: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as caught:
        config_from_env({name: raw})
    (problem,) = caught.value.problems
    assert (problem.name, problem.value, problem.allowed) == (name, raw, allowed)


def test_every_invalid_variable_is_reported_together() -> None:
    with pytest.raises(SettingsError) as caught:
        config_from_env({"REQUEST_LOG_SAMPLE_RATE": "x", "REQUEST_LOG_ERROR_BURST": "2"})
    assert [p.name for p in caught.value.problems] == [
        "REQUEST_LOG_SAMPLE_RATE",
        "REQUEST_LOG_ERROR_BURST",
    ]
