"""TTLCache: TTL, LRU bound, counters, events, single-flight, stale-if-error, module helpers."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shared.resilience import cache, events
from shared.resilience.cache import CacheResult, TTLCache
from shared.resilience.clock import FakeClock
from shared.resilience.errors import ConfigError


class Boom(Exception):
    pass


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


@pytest.fixture
def default_cache() -> Iterator[TTLCache]:
    c = cache.default_cache()
    c.clear()
    yield c
    c.clear()


def test_get_returns_value_until_ttl_then_default(clock: FakeClock) -> None:
    c = TTLCache(clock=clock)
    c.set("k", "v", 10)
    assert c.get("k") == "v"
    clock.advance(9.999)
    assert c.get("k") == "v"
    clock.advance(0.001)
    assert c.get("k") is None
    assert c.get("k", "dflt") == "dflt"
    s = c.stats()
    assert (s.hits, s.misses, s.size) == (2, 2, 1)


def test_get_or_load_calls_fn_once_per_ttl(clock: FakeClock) -> None:
    c = TTLCache(clock=clock)
    calls: list[int] = []

    def fetch() -> int:
        calls.append(1)
        return len(calls)

    assert c.get_or_load("k", 30, fetch) == 1
    assert c.get_or_load("k", 30, fetch) == 1
    clock.advance(30)
    assert c.get_or_load("k", 30, fetch) == 2
    assert len(calls) == 2
    s = c.stats()
    assert (s.hits, s.misses, s.loads, s.load_errors) == (1, 2, 2, 0)
    assert s.hit_rate == pytest.approx(1 / 3)


def test_lru_evicts_least_recently_used(clock: FakeClock) -> None:
    c = TTLCache(max_entries=3, clock=clock)
    for k in "abc":
        c.set(k, k.upper(), 60)
    assert c.get("a") == "A"  # a is now the most recently used; b is the oldest
    c.set("d", "D", 60)
    assert len(c) == 3
    assert c.get("b") is None
    assert [c.get(k) for k in "acd"] == ["A", "C", "D"]
    c.set("c", "C2", 60)  # overwriting an existing key never evicts
    assert len(c) == 3
    assert c.stats().evictions == 1


def test_lru_bound_holds_under_many_keys(clock: FakeClock) -> None:
    c = TTLCache(max_entries=50, clock=clock)
    for i in range(1000):
        c.get_or_load(f"k{i}", 60, lambda i=i: i)  # type: ignore[misc]
    assert len(c) == 50
    assert c.stats().evictions == 950
    assert c.get("k999") == 999
    assert c.get("k949") is None


def test_events_hit_miss_stale_feed_metrics(clock: FakeClock, recorder: events.Recorder) -> None:
    c = TTLCache(clock=clock, name="kg", stale_ttl=100)
    c.get_or_load("q", 10, lambda: 1)
    c.get_or_load("q", 10, lambda: 1)
    clock.advance(11)

    def fail() -> int:
        raise Boom("down")

    assert c.load("q", 10, fail) == CacheResult(1, stale=True, hit=False)
    outcomes = [(e.name, e.outcome, e.key) for e in recorder.of(events.CacheAccessed)]
    assert outcomes == [("kg", "miss", "q"), ("kg", "hit", "q"), ("kg", "stale", "q")]
    snap = events.METRICS.snapshot()["cache"]
    assert (snap["hits"], snap["misses"], snap["stale"]) == (1, 1, 1)


def test_hits_reuse_one_prebuilt_event(clock: FakeClock, recorder: events.Recorder) -> None:
    c = TTLCache(clock=clock)
    c.set("k", 1, 10)
    for _ in range(3):
        c.get_or_load("k", 10, lambda: 2)
    first, *rest = recorder.of(events.CacheAccessed)
    assert all(e is first for e in rest)  # nothing is built per hit
    c.set("k", 3, 10)
    c.get("k")
    assert recorder.of(events.CacheAccessed)[-1] is not first


def test_cache_result_is_frozen() -> None:
    result = CacheResult(1, stale=False, hit=True)
    with pytest.raises(AttributeError):
        result.value = 2  # type: ignore[misc]


def test_single_flight_ten_threads_one_call() -> None:
    c = TTLCache(name="sf")
    calls = 0
    started = threading.Event()
    release = threading.Event()

    def slow() -> str:
        nonlocal calls
        calls += 1
        started.set()
        release.wait(5)
        return "answer"

    results: list[CacheResult[str]] = []
    lock = threading.Lock()

    def worker() -> None:
        r = c.load("k", 60, slow)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    threads[0].start()
    assert started.wait(5)
    for t in threads[1:]:
        t.start()
    # The nine followers have joined the load in flight before the leader finishes.
    wait_until(lambda: c.waiting("k") == 9)
    release.set()
    for t in threads:
        t.join(5)
    assert calls == 1
    assert [r.value for r in results] == ["answer"] * 10
    assert not any(r.hit or r.stale for r in results)
    s = c.stats()
    assert (s.loads, s.misses) == (1, 10)
    assert c.waiting("k") == 0  # the flight is over


def test_single_flight_shares_the_exception() -> None:
    c = TTLCache()
    calls = 0
    started = threading.Event()
    release = threading.Event()
    boom = Boom("once")

    def failing() -> str:
        nonlocal calls
        calls += 1
        started.set()
        release.wait(5)
        raise boom

    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            c.load("k", 60, failing)
        except Boom as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    threads[0].start()
    assert started.wait(5)
    for t in threads[1:]:
        t.start()
    wait_until(lambda: c.waiting("k") == 4)
    release.set()
    for t in threads:
        t.join(5)
    assert calls == 1
    assert errors == [boom] * 5
    assert c.stats().load_errors == 1
    # A failure is not cached: the next caller loads again.
    assert c.get_or_load("k", 60, lambda: "ok") == "ok"


def test_fn_runs_without_the_cache_lock(clock: FakeClock) -> None:
    c = TTLCache(clock=clock)
    c.set("other", 1, 60)

    def reentrant() -> int:
        # Would deadlock if the lock were held across fn.
        return int(c.get("other")) + c.get_or_load("inner", 60, lambda: 41)

    assert c.get_or_load("outer", 60, reentrant) == 42


def test_stale_if_error_within_grace(clock: FakeClock) -> None:
    c = TTLCache(clock=clock, stale_ttl=60)
    c.set("k", "old", 10)
    clock.advance(10 + 59)

    def fail() -> str:
        raise Boom("backend down")

    assert c.load("k", 10, fail) == CacheResult("old", stale=True, hit=False)
    assert c.get_or_load("k", 10, fail) == "old"
    assert c.stats().stale == 2
    clock.advance(1.0)  # now exactly at the end of the grace
    with pytest.raises(Boom):
        c.load("k", 10, fail)


def test_stale_value_not_served_without_error(clock: FakeClock) -> None:
    c = TTLCache(clock=clock, stale_ttl=60)
    c.set("k", "old", 10)
    clock.advance(20)
    assert c.get("k") is None  # expired values are never served as fresh
    assert c.load("k", 10, lambda: "new") == CacheResult("new", stale=False, hit=False)
    assert c.load("k", 10, lambda: "newer") == CacheResult("new", stale=False, hit=True)


def test_stale_grace_off_by_default(clock: FakeClock) -> None:
    c = TTLCache(clock=clock)
    c.set("k", "old", 10)
    clock.advance(10)
    with pytest.raises(Boom):
        c.load("k", 10, lambda: (_ for _ in ()).throw(Boom("x")))


def test_per_call_stale_ttl_overrides_instance(clock: FakeClock) -> None:
    c = TTLCache(clock=clock, stale_ttl=0)
    c.get_or_load("k", 5, lambda: "v", stale_ttl=30)
    clock.advance(20)

    def fail() -> str:
        raise Boom("x")

    assert c.load("k", 5, fail).stale


def test_stale_survives_failed_reload_only_until_a_success(clock: FakeClock) -> None:
    c = TTLCache(clock=clock, stale_ttl=100)
    c.set("k", 1, 10)
    clock.advance(15)

    def fail() -> int:
        raise Boom("x")

    assert c.get_or_load("k", 10, fail) == 1
    assert c.get_or_load("k", 10, lambda: 2) == 2
    assert c.load("k", 10, fail) == CacheResult(2, stale=False, hit=True)


def test_interrupts_are_never_replaced_by_stale(clock: FakeClock) -> None:
    c = TTLCache(clock=clock, stale_ttl=100)
    c.set("k", 1, 1)
    clock.advance(2)

    def interrupted() -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        c.load("k", 1, interrupted)
    assert c.load("k", 1, lambda: 5).value == 5  # the flight was cleaned up


@pytest.mark.parametrize("ttl", [0, -1, math.nan])
def test_invalid_ttl_rejected(ttl: float) -> None:
    c = TTLCache()
    with pytest.raises(ConfigError, match="ttl must be > 0"):
        c.set("k", 1, ttl)
    with pytest.raises(ConfigError, match="ttl must be > 0"):
        c.get_or_load("k", ttl, lambda: 1)


def test_invalid_config_rejected() -> None:
    with pytest.raises(ConfigError, match="max_entries must be >= 1"):
        TTLCache(max_entries=0)
    with pytest.raises(ConfigError, match="stale_ttl must be >= 0"):
        TTLCache(stale_ttl=-1)


def test_infinite_ttl_never_expires(clock: FakeClock) -> None:
    c = TTLCache(clock=clock)
    c.set("k", 1, math.inf)
    clock.advance(1e9)
    assert c.get("k") == 1


def test_delete_and_clear(clock: FakeClock) -> None:
    c = TTLCache(clock=clock)
    c.set("a", 1, 10)
    c.set("b", 2, 10)
    assert c.delete("a")
    assert not c.delete("a")
    c.clear()
    assert len(c) == 0


def test_module_helpers_use_default_cache(default_cache: TTLCache) -> None:
    calls: list[int] = []

    def fetch() -> str:
        calls.append(1)
        return "data"

    assert cache.cached("seed-key", 30, fetch) == "data"  # the seed's cached('key', 30000, ...)
    assert cache.cached("seed-key", 30, fetch) == "data"
    assert len(calls) == 1
    assert cache.cached_result("seed-key", 30, fetch) == CacheResult("data", stale=False, hit=True)
    cache.cache_set("x", 7, 5)
    assert cache.cache_get("x") == 7
    assert cache.cache_get("missing", "d") == "d"
    assert default_cache.get("x") == 7
    assert default_cache.stale_ttl == cache.DEFAULT_STALE_TTL


def test_hit_path_is_cheap() -> None:
    """A hit stays in the low microseconds even with the default hooks installed."""
    c = TTLCache()
    c.set("k", "v", 60)
    n = 20_000
    started = time.perf_counter()
    for _ in range(n):
        c.get_or_load("k", 60, lambda: "x")
    per_hit = (time.perf_counter() - started) / n
    assert per_hit < 50e-6, f"{per_hit * 1e6:.1f} us per hit"
