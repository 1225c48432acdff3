"""The pure delay/error injector, on a fake clock and scripted randomness."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from shared.chaos.delay import DelayOutcome, draw, inject_delay, random_source
from shared.chaos.params import DelayParams
from shared.resilience.clock import FakeClock


@dataclass
class Scripted:
    """A random source that returns the given draws in order."""

    uniforms: list[float] = field(default_factory=list)
    randoms: list[float] = field(default_factory=list)

    def uniform(self, a: float, b: float) -> float:
        u = self.uniforms.pop(0)
        return a + (b - a) * u

    def random(self) -> float:
        return self.randoms.pop(0)


def test_waits_the_drawn_delay_then_answers_ok() -> None:
    clock = FakeClock()
    outcome = inject_delay(DelayParams(p=0.2, d_ms=300), rng=Scripted([0.5], [0.9]), clock=clock)
    assert clock.sleeps == [pytest.approx(0.45)]
    assert outcome == DelayOutcome(450.0, pytest.approx(450.0), None, None)
    assert outcome.ok
    assert outcome.status == 200


def test_injects_the_chosen_status_below_p() -> None:
    outcome = inject_delay(
        DelayParams(p=0.2, d_ms=10, status=503, retry_after_s=7),
        rng=Scripted([0.0], [0.19]),
        clock=FakeClock(),
    )
    assert (outcome.ok, outcome.status, outcome.retry_after_s) == (False, 503, 7)
    assert outcome.delay_ms == pytest.approx(10.0)


def test_retry_after_only_for_429_and_503() -> None:
    for status, expected in ((429, 1), (503, 1), (500, None), (502, None), (504, None)):
        outcome = inject_delay(
            DelayParams(p=1.0, d_ms=0, status=status), rng=Scripted([0], [0.5]), clock=FakeClock()
        )
        assert outcome.retry_after_s == expected


def test_p_zero_never_and_p_one_always_injects() -> None:
    rng = random_source(1)
    assert not any(draw(DelayParams(p=0.0, d_ms=1), rng)[1] for _ in range(1000))
    assert all(draw(DelayParams(p=1.0, d_ms=1), rng)[1] for _ in range(1000))


def test_delay_stays_within_d_and_2d() -> None:
    rng = random_source(3)
    delays = [draw(DelayParams(d_ms=40), rng)[0] for _ in range(2000)]
    assert all(40 <= ms <= 80 for ms in delays)
    assert min(delays) < 42
    assert max(delays) > 78


def test_same_seed_same_delay_and_outcome() -> None:
    params = DelayParams(p=0.5, d_ms=100, seed=42)
    first = [inject_delay(params, rng=random_source(42), clock=FakeClock()) for _ in range(5)]
    assert len({(o.planned_delay_ms, o.status) for o in first}) == 1
    others = {
        (o.planned_delay_ms, o.status)
        for o in (
            inject_delay(params, rng=random_source(seed), clock=FakeClock()) for seed in range(20)
        )
    }
    assert len(others) > 1


def test_zero_delay_does_not_sleep() -> None:
    # Not even sleep(0): on a busy server it gives up the GIL and queues to take it back.
    clock = FakeClock()
    outcome = inject_delay(DelayParams(p=0, d_ms=0), rng=random_source(None), clock=clock)
    assert outcome.delay_ms == 0.0
    assert outcome.planned_delay_ms == 0.0
    assert clock.sleeps == []
