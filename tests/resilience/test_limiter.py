"""RateLimiter and Throttle; one storage suite runs on memory, real Redis and its fallback."""

from __future__ import annotations

import itertools
import math
import threading
import time
import uuid
from bisect import bisect_left
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.resilience import events, limiter
from shared.resilience.clock import SYSTEM_CLOCK, FakeClock
from shared.resilience.errors import ConfigError, RateLimitExceeded
from shared.resilience.limiter import (
    Decision,
    LimiterStorage,
    MemoryLimiterStorage,
    RateLimiter,
    Throttle,
)
from shared.resilience.limiter_redis import RedisLimiterStorage
from shared.resilience.redis_client import storage_client
from tests import services


def dead_client() -> redis.Redis:
    """A storage client (no retries of its own) aimed at a loopback port nobody listens on."""
    return storage_client(f"redis://127.0.0.1:{services.free_port()}/0")


@pytest.fixture(
    params=["memory", pytest.param("redis", marks=pytest.mark.redis), "redis-down"],
)
def storage(request: pytest.FixtureRequest) -> LimiterStorage:
    """Every adapter, and Redis's fail-open fallback. The healthy Redis adapter fails closed
    here, so a broken Redis cannot pass as its in-memory fallback."""
    if request.param == "memory":
        return MemoryLimiterStorage()
    if request.param == "redis-down":
        return RedisLimiterStorage(dead_client(), retry_interval=3600)
    client = request.getfixturevalue("redis_client")
    return RedisLimiterStorage(client, on_failure="raise")


class RecordingStorage:
    """Wraps a store and keeps the timestamp of every allowed acquisition."""

    def __init__(self, inner: LimiterStorage) -> None:
        self.inner = inner
        self.allowed: list[float] = []
        self._lock = threading.Lock()

    def acquire(self, key: str, limit: int, window: float, now: float) -> Decision:
        decision = self.inner.acquire(key, limit, window, now)
        if decision.allowed:
            with self._lock:
                self.allowed.append(decision.at)
        return decision

    def reset(self, key: str) -> None:
        self.inner.reset(key)


def busiest_window(stamps: list[float], window: float) -> int:
    """The most timestamps in any half-open interval [t, t + window)."""
    ordered = sorted(stamps)
    best = 0
    for i, t in enumerate(ordered):
        # The busiest interval can always be taken to start at a timestamp.
        best = max(best, bisect_left(ordered, t + window) - i)
    return best


class ReferenceWindow:
    """The sliding-window rule written as plainly as possible."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.stamps: list[float] = []

    def acquire(self, now: float) -> tuple[bool, float]:
        live = sorted(t for t in self.stamps if t > now - self.window)
        if len(live) < self.limit:
            self.stamps.append(now)
            return True, 0.0
        return False, live[len(live) - self.limit] + self.window - now


# ---------------------------------------------------------------- the shared storage suite


def test_allows_limit_then_refuses_with_retry_after(storage: LimiterStorage) -> None:
    clock = FakeClock()
    lim = RateLimiter(3, 10, name=f"t-{uuid.uuid4().hex}", storage=storage, clock=clock)
    remaining = []
    for _ in range(3):
        remaining.append(lim.try_acquire().remaining)
        clock.advance(1)
    assert remaining == [2, 1, 0]
    clock.advance(1)
    refused = lim.try_acquire()
    assert not refused
    assert refused.retry_after == pytest.approx(6)
    clock.advance(6)  # the first acquisition (at t0) leaves the window exactly now
    assert lim.try_acquire()
    assert lim.try_acquire().retry_after == pytest.approx(1)
    s = lim.stats()
    assert (s.acquired, s.rejected) == (4, 2)


def test_retry_after_points_at_the_slot_that_frees(storage: LimiterStorage) -> None:
    clock = FakeClock()
    lim = RateLimiter(2, 10, name=f"t-{uuid.uuid4().hex}", storage=storage, clock=clock)
    assert lim.try_acquire()
    clock.advance(3)
    assert lim.try_acquire()
    clock.advance(1)
    assert lim.try_acquire().retry_after == pytest.approx(6)
    clock.advance(6)
    assert lim.try_acquire()
    assert lim.try_acquire().retry_after == pytest.approx(3)


def test_straggler_with_an_older_clock_reading_is_clamped(storage: LimiterStorage) -> None:
    """A caller that read the clock before another one but reaches the store after it."""
    key = f"s-{uuid.uuid4().hex}"
    stamps = []
    for now in (100.0, 101.0, 111.0, 105.0):
        decision = storage.acquire(key, 2, 10.0, now)
        assert decision.allowed
        stamps.append(decision.at)
    # Recorded at 111, not 105: otherwise [100, 110) would hold 100, 101 and 105.
    assert stamps == [100.0, 101.0, 111.0, 111.0]
    assert busiest_window(stamps, 10.0) <= 2
    refused = storage.acquire(key, 2, 10.0, 112.0)
    assert not refused
    assert refused.retry_after == pytest.approx(9.0)


def test_limiters_share_a_window_by_name(storage: LimiterStorage) -> None:
    clock = FakeClock()
    name = f"t-{uuid.uuid4().hex}"
    a = RateLimiter(2, 60, name=name, storage=storage, clock=clock)
    b = RateLimiter(2, 60, name=name, storage=storage, clock=clock)
    other = RateLimiter(2, 60, name=name + "-other", storage=storage, clock=clock)
    assert a.try_acquire()
    assert b.try_acquire()
    assert not a.try_acquire()
    assert not b.try_acquire()
    assert other.try_acquire()


def test_reset_forgets_the_window(storage: LimiterStorage) -> None:
    clock = FakeClock()
    lim = RateLimiter(1, 60, name=f"t-{uuid.uuid4().hex}", storage=storage, clock=clock)
    assert lim.try_acquire()
    assert not lim.try_acquire()
    lim.reset()
    assert lim.try_acquire()


def test_wait_if_needed_sleeps_until_a_slot_frees(storage: LimiterStorage) -> None:
    clock = FakeClock()
    lim = RateLimiter(10, 60, name=f"t-{uuid.uuid4().hex}", storage=storage, clock=clock)
    for _ in range(10):  # the seed's createRateLimiter(10, 60000)
        assert lim.wait_if_needed() == 0.0
    clock.advance(15)
    assert lim.wait_if_needed() == pytest.approx(45)
    assert sum(clock.sleeps) == pytest.approx(45)
    s = lim.stats()
    assert (s.acquired, s.waits, s.rejected) == (11, 1, 0)
    assert s.waited == pytest.approx(45)


def test_immediate_acquisition_is_not_a_wait(
    storage: LimiterStorage, recorder: events.Recorder
) -> None:
    lim = RateLimiter(5, 60, name=f"t-{uuid.uuid4().hex}", storage=storage)  # real clock
    assert [lim.wait_if_needed() for _ in range(5)] == [0.0] * 5
    assert lim.stats().waits == 0
    assert recorder.of(events.LimiterWaited) == []


def test_wait_if_needed_times_out_without_sleeping(
    storage: LimiterStorage, recorder: events.Recorder
) -> None:
    clock = FakeClock()
    lim = RateLimiter(1, 30, name=f"t-{uuid.uuid4().hex}", storage=storage, clock=clock)
    lim.wait_if_needed()
    with pytest.raises(RateLimitExceeded) as info:
        lim.wait_if_needed(timeout=29)
    assert info.value.retry_after == pytest.approx(30)
    assert info.value.name == lim.name
    assert clock.sleeps == []
    assert lim.wait_if_needed(timeout=30) == pytest.approx(30)
    assert lim.stats().timeouts == 1
    rejected = recorder.of(events.LimiterRejected)
    assert [r.retry_after for r in rejected] == [pytest.approx(30)]
    assert [w.waited for w in recorder.of(events.LimiterWaited)] == [pytest.approx(30)]
    limiter_metrics = events.METRICS.snapshot()["limiter"]
    assert (limiter_metrics["waits"], limiter_metrics["rejects"]) == (1, 1)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.integers(1, 6),
    window=st.sampled_from([0.5, 1.0, 7.25, 60.0]),
    ops=st.lists(
        st.one_of(
            st.none(),  # an acquisition
            st.floats(0, 1.5),  # advance by a fraction of the window
            st.sampled_from([1.0, 0.5, 0.25]),  # exact fractions land on window edges
        ),
        max_size=60,
    ),
)
def test_property_never_more_than_limit_in_any_window(
    storage: LimiterStorage, limit: int, window: float, ops: list[float | None]
) -> None:
    clock = FakeClock()
    recording = RecordingStorage(storage)
    lim = RateLimiter(limit, window, name=f"p-{uuid.uuid4().hex}", storage=recording, clock=clock)
    model = ReferenceWindow(limit, window)
    for op in ops:
        if op is None:
            decision = lim.try_acquire()
            allowed, retry_after = model.acquire(clock.time())
            assert decision.allowed is allowed
            assert decision.retry_after == pytest.approx(retry_after, abs=1e-6)
        else:
            clock.advance(op * window)
    assert busiest_window(recording.allowed, window) <= limit
    assert recording.allowed == model.stamps


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    limit=st.integers(1, 5),
    window=st.sampled_from([1.0, 2.5]),
    readings=st.lists(st.floats(-3.0, 3.0), max_size=50),
)
def test_property_clock_readings_out_of_order(
    storage: LimiterStorage, limit: int, window: float, readings: list[float]
) -> None:
    """Callers whose clock readings reach the store out of order (threads, skewed processes)."""
    key = f"o-{uuid.uuid4().hex}"
    stamps: list[float] = []
    base, drift = 1_000.0, 0.0
    for jitter in readings:
        drift += abs(jitter) / 2  # time moves on, each reading is off by up to 3 s either way
        now = base + drift + jitter
        decision = storage.acquire(key, limit, window, now)
        # The plain rule, without pruning: the stamp is never before an earlier one.
        at = max([now, *stamps])
        live = sum(1 for t in stamps if t > at - window)
        assert decision.at == at
        assert decision.allowed is (live < limit)
        if decision.allowed:
            stamps.append(at)
    assert busiest_window(stamps, window) <= limit


def test_threads_hammering_get_exactly_limit(storage: LimiterStorage) -> None:
    lim = RateLimiter(37, 60, name=f"h-{uuid.uuid4().hex}", storage=storage)
    successes = 0
    lock = threading.Lock()
    go = threading.Barrier(8)

    def hammer() -> None:
        nonlocal successes
        go.wait()
        mine = sum(1 for _ in range(60) if lim.try_acquire())
        with lock:
            successes += mine

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert successes == 37
    assert lim.stats().acquired == 37
    assert lim.stats().rejected == 8 * 60 - 37


def test_threads_in_short_windows_never_exceed_limit(storage: LimiterStorage) -> None:
    """Real clock, windows of 50 ms for 0.4 s: every acquisition timestamp is checked."""
    recording = RecordingStorage(storage)
    window, limit = 0.05, 4
    lim = RateLimiter(limit, window, name=f"w-{uuid.uuid4().hex}", storage=recording)
    stop = time.monotonic() + 0.4

    def hammer() -> None:
        while time.monotonic() < stop:
            if not lim.try_acquire():
                time.sleep(0.001)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert busiest_window(recording.allowed, window) <= limit
    # The limiter was actually saturated, so the bound above was under test.
    assert len(recording.allowed) >= limit * 4


def test_threads_blocking_in_wait_if_needed_respect_the_window(storage: LimiterStorage) -> None:
    recording = RecordingStorage(storage)
    window, limit = 0.1, 3
    lim = RateLimiter(limit, window, name=f"b-{uuid.uuid4().hex}", storage=recording)

    def worker() -> None:
        for _ in range(3):
            lim.wait_if_needed(timeout=5)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    elapsed = time.monotonic() - started
    assert len(recording.allowed) == 12
    assert busiest_window(recording.allowed, window) <= limit
    assert elapsed >= 3 * window * 0.9  # 12 acquisitions at 3 per 0.1 s need >= 0.3 s


# ---------------------------------------------------------------- RateLimiter configuration


@pytest.mark.parametrize(
    ("limit", "window", "message"),
    [
        (0, 1.0, "limit must be an integer >= 1"),
        (1.5, 1.0, "limit must be an integer >= 1"),
        (True, 1.0, "limit must be an integer >= 1"),
        (1, 0.0, "window must be a finite number of seconds > 0"),
        (1, math.inf, "window must be a finite number of seconds > 0"),
        (1, math.nan, "window must be a finite number of seconds > 0"),
    ],
)
def test_invalid_limiter_config(limit: Any, window: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RateLimiter(limit, window)


def test_negative_timeout_rejected() -> None:
    with pytest.raises(ConfigError, match="timeout must be >= 0"):
        RateLimiter(1, 1).wait_if_needed(timeout=-1)


def test_decision_truthiness() -> None:
    assert Decision(True, 0.0, 3, 1.0)
    assert not Decision(False, 1.0, 0, 1.0)


def test_memory_store_forgets_idle_keys() -> None:
    store = MemoryLimiterStorage()
    for i in range(2000):
        store.acquire(f"k{i}", 1, 1.0, float(i))
    # Sweeps run every 1024 calls and drop keys whose last acquisition left their window.
    assert len(store._logs) < 1100
    assert not store.acquire("k1999", 1, 1.0, 1999.5)


def test_memory_store_keeps_log_when_window_changes() -> None:
    store = MemoryLimiterStorage()
    assert store.acquire("k", 1, 10.0, 0.0)
    assert not store.acquire("k", 1, 5.0, 1.0)


# ---------------------------------------------------------------- Throttle


def test_throttle_spaces_calls_per_key() -> None:
    clock = FakeClock()
    th = Throttle(0.12, clock=clock, name="api")  # the seed's throttle(120)
    assert th.wait() == 0.0
    assert th.wait() == pytest.approx(0.12)
    clock.advance(0.05)
    assert th.wait() == pytest.approx(0.07)
    assert th.wait("other") == 0.0
    clock.advance(1)
    assert th.wait() == 0.0
    s = th.stats()
    assert (s.calls, s.waits) == (5, 2)
    assert s.waited == pytest.approx(0.19)


def test_throttle_emits_waited(recorder: events.Recorder) -> None:
    clock = FakeClock()
    th = Throttle(1.0, clock=clock, name="slow-api")
    th.wait()
    th.wait()
    waited = recorder.of(events.LimiterWaited)
    assert [(e.name, e.waited) for e in waited] == [("slow-api", 1.0)]


def test_throttle_per_call_interval() -> None:
    clock = FakeClock()
    th = Throttle(clock=clock)
    th.wait("k", min_interval=2.0)
    clock.advance(1.0)
    assert th.reserve("k", min_interval=5.0) == pytest.approx(4.0)  # 5 s after the last call
    assert th.reserve("k") == pytest.approx(4.0)  # no interval, but never before the last one


def test_throttle_forgets_only_keys_that_cannot_matter() -> None:
    clock = FakeClock()
    th = Throttle(clock=clock)
    th.wait("slow", min_interval=100.0)
    for i in range(2000):
        th.wait(f"k{i}", min_interval=0.001)
        clock.advance(0.1)
    # Only keys idle for longer than the longest interval in use (100 s) were dropped.
    assert len(th._last) <= 1100
    assert "k1000" in th._last
    assert th.reserve("k1999", min_interval=1.0) == pytest.approx(0.9)
    assert th.reserve("slow", min_interval=100.0) == 0.0  # 200 s since its last call


def test_throttle_concurrent_callers_are_serialised() -> None:
    th = Throttle(0.02, clock=SYSTEM_CLOCK)
    stamps: list[float] = []
    lock = threading.Lock()

    def call() -> None:
        th.wait("shared")
        with lock:
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    stamps.sort()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert stamps[-1] - stamps[0] >= 5 * 0.02 * 0.95
    assert min(gaps) > 0.01


def test_module_throttle_uses_seconds() -> None:
    key = f"mod-{uuid.uuid4().hex}"
    started = time.monotonic()
    assert limiter.throttle(0.03, key=key) == 0.0
    waited = limiter.throttle(0.03, key=key)
    assert 0.0 < waited <= 0.03
    assert time.monotonic() - started >= 0.025


@pytest.mark.parametrize("interval", [-1.0, math.inf, math.nan])
def test_invalid_throttle_interval(interval: float) -> None:
    with pytest.raises(ConfigError, match="min_interval must be a finite number"):
        Throttle(interval)
