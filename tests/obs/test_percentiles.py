"""Percentiles against hand-computed values and properties; the latency window."""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.obs.percentiles import LatencySummary, LatencyWindow, percentile, summarize

TENS = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        # position = (n - 1) * q / 100; interpolate between the neighbouring sorted values.
        (TENS, 0, 10.0),
        (TENS, 25, 32.5),  # position 2.25 -> 30 + 0.25 * 10
        (TENS, 50, 55.0),  # position 4.5
        (TENS, 75, 77.5),  # position 6.75
        (TENS, 90, 91.0),  # position 8.1
        (TENS, 99, 99.1),  # position 8.91
        (TENS, 100, 100.0),
        ([15, 20, 35, 40, 50], 40, 29.0),  # position 1.6 -> 20 + 0.6 * 15
        ([1, 2, 3, 4], 50, 2.5),
        ([3, 1, 4, 1, 5, 9, 2, 6], 50, 3.5),  # unsorted input: sorted 1 1 2 3 4 5 6 9
        ([7], 0, 7.0),
        ([7], 63.2, 7.0),
        ([-5, 5], 50, 0.0),
    ],
)
def test_percentile_known_values(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_percentile_errors() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], 100.5)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], -1)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        percentile([1.0], math.nan)
    with pytest.raises(ValueError, match="finite"):
        percentile([1.0, math.nan], 50)
    with pytest.raises(ValueError, match="finite"):
        percentile([1.0, math.inf], 50)


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False)
samples = st.lists(finite, min_size=1, max_size=50)
qs = st.floats(min_value=0, max_value=100)


@given(samples, qs, qs)
def test_percentile_is_monotone_in_q_and_within_range(
    values: list[float], a: float, b: float
) -> None:
    low, high = min(a, b), max(a, b)
    p_low, p_high = percentile(values, low), percentile(values, high)
    assert p_low <= p_high
    assert min(values) <= p_low
    assert p_high <= max(values)


@given(samples)
def test_percentile_hits_the_sorted_values_at_exact_ranks(values: list[float]) -> None:
    ordered = sorted(values)
    n = len(ordered)
    # q is a float: 100*k/(n-1) lands a rounding error away from rank k, which the interpolation
    # scales by the gap to the neighbour (up to 2e9 here), hence a tolerance on the values' scale.
    scale = max(1.0, max(abs(v) for v in values))
    for k in range(n):
        q = 100.0 * k / (n - 1) if n > 1 else 0.0
        assert percentile(values, q) == pytest.approx(ordered[k], rel=1e-9, abs=1e-12 * scale)


def test_summarize() -> None:
    summary = summarize(list(reversed(TENS)))
    assert summary.as_dict() == pytest.approx(
        {
            "count": 10,
            "mean": 55.0,
            "min": 10.0,
            "p50": 55.0,
            "p90": 91.0,
            "p95": 95.5,
            "p99": 99.1,
            "max": 100.0,
        }
    )
    assert isinstance(summary, LatencySummary)
    assert summary.as_dict()["p50"] == 55.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.count = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="empty"):
        summarize([])


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_is_bounded_by_count() -> None:
    window = LatencyWindow(max_count=3)
    for ms in (1, 2, 3, 4, 5):
        window.record(ms)
    assert window.values() == [3.0, 4.0, 5.0]
    assert len(window) == 3
    summary = window.summary()
    assert summary is not None
    assert (summary.count, summary.min, summary.max) == (3, 3.0, 5.0)


def test_window_is_bounded_by_age() -> None:
    clock = FakeClock()
    window = LatencyWindow(max_count=None, max_age=10.0, clock=clock)
    window.record(100)
    clock.now += 6
    window.record(200)
    clock.now += 5  # the first sample is now 11 s old
    assert window.values() == [200.0]
    clock.now += 10
    assert window.summary() is None
    assert len(window) == 0


def test_window_error_rate() -> None:
    window = LatencyWindow(max_count=4)
    window.record(5)
    assert window.error_rate is None
    window.record(5, ok=True)
    window.record(5, ok=False)
    window.record(5, ok=True)
    assert window.error_rate == pytest.approx(1 / 3)
    window.record(5, ok=False)  # evicts the sample without an outcome
    assert window.error_rate == pytest.approx(2 / 4)
    window.clear()
    assert window.error_rate is None
    assert window.summary() is None


def test_window_rejects_invalid_configuration_and_values() -> None:
    with pytest.raises(ValueError, match="max_count, max_age or both"):
        LatencyWindow(max_count=None)
    with pytest.raises(ValueError, match="max_count"):
        LatencyWindow(max_count=0)
    with pytest.raises(ValueError, match="max_age"):
        LatencyWindow(max_age=0)
    with pytest.raises(ValueError, match="finite"):
        LatencyWindow().record(math.nan)


def test_window_is_thread_safe() -> None:
    window = LatencyWindow(max_count=100_000, max_age=3600)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for i in range(2000):
            window.record(i, ok=i % 4 != 0)
            if i % 100 == 0:
                window.summary()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(window) == 16_000
    assert window.error_rate == pytest.approx(0.25)
