"""Redis limiter store: exact across processes, and its declared fallback when Redis fails."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.resilience import events
from shared.resilience.clock import FakeClock
from shared.resilience.errors import ConfigError, StorageError
from shared.resilience.limiter import RateLimiter
from shared.resilience.limiter_redis import RedisLimiterStorage
from shared.resilience.redis_client import DEFAULT_TIMEOUT, storage_client
from tests import services
from tests.resilience.test_limiter import busiest_window, dead_client

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[2]

# Each worker process hammers two shared limiters (one long window, then short windows) and
# prints the timestamps it was granted in each.
WORKER = textwrap.dedent(
    """
    import json, sys, time
    import redis
    from shared.resilience.limiter import RateLimiter
    from shared.resilience.limiter_redis import RedisLimiterStorage

    port, name = int(sys.argv[1]), sys.argv[2]
    store = RedisLimiterStorage(redis.Redis(port=port), on_failure="raise")
    long = RateLimiter(LONG_LIMIT, 60.0, name=name + "-long", storage=store)
    short = RateLimiter(SHORT_LIMIT, SHORT_WINDOW, name=name + "-short", storage=store)
    sys.stdin.readline()  # start together

    def hammer(lim, seconds):
        granted, stop = [], time.monotonic() + seconds
        while time.monotonic() < stop:
            decision = lim.try_acquire()
            if decision:
                granted.append(decision.at)
        return granted

    print(json.dumps({"long": hammer(long, 0.3), "short": hammer(short, 0.6)}))
    """
)
LONG_LIMIT, SHORT_LIMIT, SHORT_WINDOW = 25, 5, 0.1


@pytest.fixture(scope="module")
def granted(redis_service: services.Service) -> dict[str, list[float]]:
    """Timestamps granted to 3 worker processes sharing the limiters, by limiter."""
    source = (
        WORKER.replace("LONG_LIMIT", str(LONG_LIMIT))
        .replace("SHORT_LIMIT", str(SHORT_LIMIT))
        .replace("SHORT_WINDOW", str(SHORT_WINDOW))
    )
    name = f"mp-{uuid.uuid4().hex}"
    argv = [sys.executable, "-c", source, str(redis_service.port), name]
    procs = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, text=True)
        for _ in range(3)
    ]
    try:
        for p in procs:  # release all three before collecting any
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outputs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0, 0]
    merged: dict[str, list[float]] = {"long": [], "short": []}
    for out in outputs:
        result = json.loads(out)
        merged["long"] += result["long"]
        merged["short"] += result["short"]
    return merged


@pytest.mark.slow
def test_three_processes_share_one_exact_limit(granted: dict[str, list[float]]) -> None:
    assert len(granted["long"]) == LONG_LIMIT
    assert busiest_window(granted["long"], 60.0) == LONG_LIMIT


@pytest.mark.slow
def test_three_processes_in_short_windows_never_exceed_limit(
    granted: dict[str, list[float]],
) -> None:
    assert busiest_window(granted["short"], SHORT_WINDOW) <= SHORT_LIMIT
    assert len(granted["short"]) >= SHORT_LIMIT * 5  # saturated for most of the run


def test_fail_open_falls_back_to_a_local_window() -> None:
    recorder = events.Recorder()
    clock = FakeClock()
    store = RedisLimiterStorage(dead_client(), retry_interval=5, clock=clock)
    lim = RateLimiter(2, 60, name="degraded", storage=store, clock=clock)
    with events.use_hooks(recorder):
        results = [bool(lim.try_acquire()) for _ in range(4)]
    assert results == [True, True, False, False]  # still limited, locally
    assert store.degraded
    assert store.failures == 1  # later calls skipped Redis for retry_interval
    failed = recorder.of(events.LimiterStorageFailed)
    assert [(e.name, e.fallback) for e in failed] == [("limiter:degraded", "memory")]
    assert "ConnectionError" in failed[0].error


def test_fail_closed_raises_storage_error() -> None:
    store = RedisLimiterStorage(dead_client(), on_failure="raise")
    lim = RateLimiter(2, 60, name="strict", storage=store)
    with pytest.raises(StorageError, match="strict") as info:
        lim.try_acquire()
    assert isinstance(info.value.__cause__, redis.RedisError)


def test_recovers_to_redis_after_an_outage() -> None:
    """A private redis-server is stopped and restarted on the same port."""
    svc = services.start_redis()
    port = svc.port
    clock = FakeClock()
    client = storage_client(f"redis://127.0.0.1:{port}/0", timeout=0.5)
    recorder = events.Recorder()
    try:
        store = RedisLimiterStorage(client, retry_interval=5, clock=clock)
        lim = RateLimiter(3, 60, name="flaky", storage=store, clock=clock)
        with events.use_hooks(recorder):
            assert lim.try_acquire()  # recorded in Redis
            svc.stop()
            assert lim.try_acquire()  # Redis is down: local window
            degraded = [store.degraded]
            clock.advance(5)
            svc = services.start_process(
                "redis",
                [
                    shutil.which("redis-server") or "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ],
                port,
            )
            assert lim.try_acquire()  # probed Redis again and it answered
            degraded.append(store.degraded)
            assert degraded == [True, False]
            key = "resilience:limiter:flaky"
            assert client.zcard(key) == 1  # the restarted (empty) server got the new one
        assert len(recorder.of(events.LimiterStorageFailed)) == 1
    finally:
        client.close()
        svc.stop()


def test_members_are_unique_for_simultaneous_acquisitions(redis_client: Any) -> None:
    store = RedisLimiterStorage(redis_client, on_failure="raise")
    for _ in range(5):
        assert store.acquire("same-instant", 10, 60.0, 1_000.0)
    assert redis_client.zcard("resilience:limiter:same-instant") == 5
    assert not store.acquire("same-instant", 5, 60.0, 1_000.0)


def test_idle_windows_expire_in_redis(redis_client: Any) -> None:
    store = RedisLimiterStorage(redis_client, on_failure="raise")
    store.acquire("ttl", 1, 2.0, 1_000.0)
    ttl_ms = redis_client.pttl("resilience:limiter:ttl")
    assert 2_000 < ttl_ms <= 3_000


def test_exact_scores_survive_the_round_trip(redis_client: Any) -> None:
    """Timestamps that differ only in the last bits are kept apart (no 14-digit rounding)."""
    store = RedisLimiterStorage(redis_client, on_failure="raise")
    t = 1_795_000_000.123456
    window = 0.5
    assert store.acquire("precise", 1, window, t)
    just_inside = t + window - 2e-7  # still within the window of the first acquisition
    refused = store.acquire("precise", 1, window, just_inside)
    assert not refused
    assert refused.at == just_inside
    assert store.acquire("precise", 1, window, t + window)


def test_works_with_decoding_clients(redis_service: services.Service, redis_client: Any) -> None:
    client = redis.Redis(port=redis_service.port, decode_responses=True)
    try:
        store = RedisLimiterStorage(client, on_failure="raise")
        assert store.acquire("decoded", 1, 10.0, 1_000.25)
        refused = store.acquire("decoded", 1, 10.0, 1_004.0)
        assert (refused.allowed, refused.retry_after, refused.at) == (False, 6.25, 1_004.0)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"on_failure": "ignore"}, "on_failure must be 'fail_open' or 'raise'"),
        ({"retry_interval": -1}, "retry_interval must be >= 0 seconds"),
    ],
)
def test_invalid_store_config(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RedisLimiterStorage(dead_client(), **kwargs)


# -- an outage costs one short timeout, then the fallback (issue 12, defect 12) ------------------


@contextlib.contextmanager
def stalled_server() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def timed_acquire(store: RedisLimiterStorage, recorder: events.Recorder) -> float:
    lim = RateLimiter(5, 60, name="outage", storage=store)
    with events.use_hooks(recorder):
        started = time.monotonic()
        assert lim.try_acquire()  # admitted by the local window
        return time.monotonic() - started


def test_a_killed_redis_costs_one_short_timeout_and_reports_it() -> None:
    svc = services.start_redis()
    recorder = events.Recorder()
    try:
        store = RedisLimiterStorage(f"redis://127.0.0.1:{svc.port}/0", retry_interval=60)
        assert store.acquire("outage", 5, 60.0, time.time())  # Redis answers
        svc.stop()
        # redis-py's own retries took 4.4 s here with a default client; a refused connect is
        # milliseconds (the bound leaves room for a loaded machine).
        assert timed_acquire(store, recorder) < 1.0
    finally:
        svc.stop()
    assert store.degraded
    (failed,) = recorder.of(events.LimiterStorageFailed)
    assert (failed.name, failed.fallback) == ("limiter:outage", "memory")
    assert "ConnectionError" in failed.error


def test_a_stalled_redis_costs_one_short_timeout_and_reports_it() -> None:
    recorder = events.Recorder()
    with stalled_server() as port:
        store = RedisLimiterStorage(f"redis://127.0.0.1:{port}/0", retry_interval=60)
        # A default client waited 5 s for each of 4 tries here (60 s in all).
        assert DEFAULT_TIMEOUT <= timed_acquire(store, recorder) < DEFAULT_TIMEOUT + 1.0
    (failed,) = recorder.of(events.LimiterStorageFailed)
    assert "TimeoutError" in failed.error


def test_a_url_reaches_a_healthy_redis(redis_service: services.Service) -> None:
    store = RedisLimiterStorage(f"redis://127.0.0.1:{redis_service.port}/0", on_failure="raise")
    name = f"url-{uuid.uuid4().hex}"
    lim = RateLimiter(1, 60, name=name, storage=store)
    assert lim.try_acquire()
    assert not lim.try_acquire()
    assert not store.degraded
    lim.reset()
