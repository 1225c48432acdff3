"""The breaker suite on memory AND real Redis; Redis shared by instances; Redis failing."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pybreaker
import pytest
import redis

from shared.resilience import events
from shared.resilience.circuit import Circuit, MemoryStorage, RedisStorage
from shared.resilience.clock import FakeClock
from shared.resilience.errors import CircuitOpenError, StorageError
from tests import services
from tests.resilience.breaker_conftest_helpers import (
    StorageFactory,
    bad_request,
    fail,
    memory_factory,
    ok,
    outcome,
    recording,
    redis_factory,
    transitions,
    trip,
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def make_storage(request: pytest.FixtureRequest, unique: str) -> StorageFactory:
    if request.param == "memory":
        return memory_factory
    client = request.getfixturevalue("redis_client")
    return redis_factory(client, f"test:{unique}")


def circuit_on(make_storage: StorageFactory, clock: FakeClock, **options: Any) -> Circuit:
    name = options.pop("name", "dep")
    return Circuit(4, 8.0, name=name, storage=make_storage(name), clock=clock, **options)


# -- the same suite on both storages -------------------------------------------------------------


def test_seed_cycle(make_storage: StorageFactory, clock: FakeClock) -> None:
    circuit = circuit_on(make_storage, clock)
    with recording() as rec:
        trip(circuit, 3)
        assert circuit.state == "closed"
        trip(circuit, 1)
        assert circuit.state == "open"
        assert outcome(circuit, ok()) == "rejected"
        clock.advance(7.5)
        assert outcome(circuit, ok()) == "rejected"
        clock.advance(0.5)
        assert circuit.state == "half-open"
        assert outcome(circuit, fail()) == "Boom"
        assert circuit.state == "open"
        clock.advance(8.0)
        assert outcome(circuit, ok()) == "ok"
        assert circuit.state == "closed"
    assert transitions(rec) == [
        ("closed", "open"),
        ("open", "half-open"),
        ("half-open", "open"),
        ("open", "half-open"),
        ("half-open", "closed"),
    ]
    assert len(rec.of(events.BreakerRejected)) == 2
    assert rec.of(events.BreakerStorageFailed) == []


def test_successes_reset_failures(make_storage: StorageFactory, clock: FakeClock) -> None:
    circuit = circuit_on(make_storage, clock)
    for _ in range(3):
        trip(circuit, 3)
        assert outcome(circuit, ok()) == "ok"
        assert circuit.stats().consecutive_failures == 0
    assert circuit.state == "closed"


def test_business_errors(make_storage: StorageFactory, clock: FakeClock) -> None:
    circuit = circuit_on(make_storage, clock)
    trip(circuit, 3)
    assert outcome(circuit, bad_request) == "HttpStatusError"
    trip(circuit, 3)
    assert circuit.state == "closed"


def test_success_threshold(make_storage: StorageFactory, clock: FakeClock) -> None:
    circuit = circuit_on(make_storage, clock, success_threshold=2)
    trip(circuit, 4)
    clock.advance(8.0)
    assert outcome(circuit, ok()) == "ok"
    assert circuit.stats().half_open_successes == 1
    assert circuit.state == "half-open"
    assert outcome(circuit, ok()) == "ok"
    assert circuit.state == "closed"


def test_failure_rate(make_storage: StorageFactory, clock: FakeClock) -> None:
    circuit = circuit_on(
        make_storage, clock, failure_rate_threshold=50, window_size=4, minimum_calls=4
    )
    for fn in (ok(), fail(), ok()):
        outcome(circuit, fn)
    assert circuit.state == "closed"
    outcome(circuit, fail())
    assert circuit.state == "open"


def test_force_open_and_reset(make_storage: StorageFactory, clock: FakeClock) -> None:
    circuit = circuit_on(make_storage, clock)
    circuit.open()
    assert circuit.state == "open"
    assert circuit.retry_after() == pytest.approx(8.0)
    assert outcome(circuit, ok()) == "rejected"
    circuit.reset()
    assert circuit.state == "closed"
    assert outcome(circuit, ok()) == "ok"


def test_stats(make_storage: StorageFactory, clock: FakeClock) -> None:
    circuit = circuit_on(make_storage, clock)
    trip(circuit, 4)
    stats = circuit.stats()
    assert stats.state == "open"
    assert stats.consecutive_failures == 4
    assert stats.retry_after == pytest.approx(8.0)
    assert stats.storage_ok


def test_half_open_admits_one_probe_at_a_time(
    make_storage: StorageFactory, clock: FakeClock
) -> None:
    circuit = circuit_on(make_storage, clock)
    trip(circuit, 4)
    clock.advance(8.0)
    inner: list[str] = []

    def probe() -> str:
        inner.append(outcome(circuit, ok()))  # a second call while the probe runs
        return "probed"

    assert circuit.call(probe) == "probed"
    assert inner == ["rejected"]
    assert circuit.state == "closed"


def test_two_circuits_on_one_storage_name_act_as_one(
    make_storage: StorageFactory, clock: FakeClock
) -> None:
    storage = make_storage("dep")
    a = Circuit(4, 8.0, name="dep", storage=storage, clock=clock)
    b = Circuit(4, 8.0, name="dep", storage=storage, clock=clock)
    trip(a, 2)
    trip(b, 2)
    assert a.state == b.state == "open"


# -- Redis: separate storages and circuits on the same name behave as one ------------------------


@pytest.fixture
def redis_pair(redis_client: Any, unique: str, clock: FakeClock) -> tuple[Circuit, Circuit]:
    """Two "instances" of one function: separate clients, storages and circuits, one name."""
    port = redis_client.connection_pool.connection_kwargs["port"]
    other_client = redis.Redis(host="127.0.0.1", port=port)
    ns = f"pair:{unique}"
    a = Circuit(
        4, 8.0, name="llm", storage=RedisStorage(redis_client, "llm", namespace=ns), clock=clock
    )
    b = Circuit(
        4, 8.0, name="llm", storage=RedisStorage(other_client, "llm", namespace=ns), clock=clock
    )
    return a, b


@pytest.mark.redis
def test_one_instance_trips_it_and_the_other_sees_it_open(
    redis_pair: tuple[Circuit, Circuit], clock: FakeClock
) -> None:
    a, b = redis_pair
    with recording() as rec:
        trip(a, 4)
        assert b.state == "open"
        called = []
        with pytest.raises(CircuitOpenError) as info:
            b.call(lambda: called.append(1))
        assert called == []
        assert info.value.retry_after == pytest.approx(8.0)
    changes = rec.of(events.BreakerStateChanged)
    assert [(e.old_state, e.new_state) for e in changes] == [("closed", "open")] * 2
    assert changes[1].reason == "changed by another instance"


@pytest.mark.redis
def test_both_instances_reach_half_open_after_the_timeout(
    redis_pair: tuple[Circuit, Circuit], clock: FakeClock
) -> None:
    a, b = redis_pair
    trip(a, 4)
    clock.advance(5.0)
    assert outcome(b, ok()) == "rejected"
    assert b.retry_after() == pytest.approx(3.0)  # the shared opened_at, not b's first sight
    clock.advance(3.0)
    assert a.state == b.state == "half-open"
    # b (which never saw the trip happen) runs the probe; its success closes it for a too.
    assert outcome(b, ok()) == "ok"
    assert a.state == b.state == "closed"
    assert outcome(a, ok()) == "ok"


@pytest.mark.redis
def test_a_failed_probe_on_one_instance_reopens_it_for_both(
    redis_pair: tuple[Circuit, Circuit], clock: FakeClock
) -> None:
    a, b = redis_pair
    trip(b, 4)
    clock.advance(8.0)
    assert outcome(a, fail()) == "Boom"
    assert a.state == b.state == "open"
    assert outcome(b, ok()) == "rejected"
    clock.advance(8.0)
    assert outcome(a, ok()) == "ok"
    assert b.state == "closed"


@pytest.mark.redis
def test_failures_are_counted_across_instances(
    redis_pair: tuple[Circuit, Circuit], clock: FakeClock
) -> None:
    a, b = redis_pair
    trip(a, 2)
    trip(b, 1)
    assert a.state == "closed"
    trip(a, 1)
    assert b.state == "open"


@pytest.mark.redis
def test_a_stale_instance_cannot_cut_a_fresh_open_period_short(
    redis_client: Any, unique: str, clock: FakeClock
) -> None:
    storage = RedisStorage(redis_client, "cas", namespace=unique)
    storage.trip(100.25)
    assert storage.load() == ("open", 100.25, 0)
    storage.trip(200.5)  # re-opened by someone else
    assert storage.try_half_open(100.25) is False
    assert storage.state == "open"
    assert storage.try_half_open(200.5) is True
    assert storage.state == "half-open"
    assert storage.try_half_open(200.5) is False


@pytest.mark.redis
def test_opened_at_keeps_sub_second_precision(redis_client: Any, unique: str) -> None:
    storage = RedisStorage(redis_client, "precise", namespace=unique)
    storage.trip(1_700_000_000.123456)
    assert storage.opened_at_time == 1_700_000_000.123456
    opened = storage.opened_at
    assert opened is not None
    assert opened.microsecond == pytest.approx(123456, abs=1)


@pytest.mark.redis
def test_redis_storage_drives_a_plain_pybreaker_and_shares_opened_at(
    redis_client: Any, unique: str
) -> None:
    first = pybreaker.CircuitBreaker(
        fail_max=2,
        reset_timeout=60,
        state_storage=RedisStorage(redis_client, "pb", namespace=unique),
    )
    for _ in range(2):
        with pytest.raises((ConnectionError, pybreaker.CircuitBreakerError)):
            first.call(fail())
    second_storage = RedisStorage(redis_client, "pb", namespace=unique)
    assert second_storage.state == "open"
    assert second_storage.opened_at is not None


@pytest.mark.redis
def test_state_lives_in_one_hash_under_the_namespace(redis_client: Any, unique: str) -> None:
    circuit = Circuit(
        4, 8.0, name="llm:gpt", storage=RedisStorage(redis_client, "llm:gpt", namespace=unique)
    )
    trip(circuit, 4)
    assert redis_client.keys(f"{unique}:*") == [f"{unique}:llm:gpt".encode()]
    stored = redis_client.hgetall(f"{unique}:llm:gpt")
    assert stored[b"state"] == b"open"
    assert abs(float(stored[b"opened_at"]) - time.time()) < 5  # wall time
    assert stored[b"fails"] == b"4"


@pytest.mark.redis
def test_a_decoding_client_works_too(redis_client: Any, unique: str, clock: FakeClock) -> None:
    port = redis_client.connection_pool.connection_kwargs["port"]
    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    circuit = Circuit(
        4, 8.0, name="d", storage=RedisStorage(client, "d", namespace=unique), clock=clock
    )
    trip(circuit, 4)
    clock.advance(8.0)
    assert circuit.state == "half-open"
    assert outcome(circuit, ok()) == "ok"


@pytest.mark.redis
def test_garbage_in_redis_is_a_storage_failure(redis_client: Any, unique: str) -> None:
    storage = RedisStorage(redis_client, "g", namespace=unique)
    redis_client.hset(storage.key, "state", "ajar")
    with pytest.raises(StorageError, match="ajar"):
        storage.load()
    circuit = Circuit(name="g", storage=storage)
    with recording() as rec:
        assert circuit.call(ok(1)) == 1
    assert len(rec.of(events.BreakerStorageFailed)) == 1


# -- Redis failing: fallback state, one event per retry interval, nothing leaks -------------------


def dead_redis_storage(name: str = "dep") -> RedisStorage:
    """Storage on a port where nothing listens, failing fast (no client-side retries)."""
    client = redis.Redis(
        host="127.0.0.1",
        port=services.free_port(),
        socket_connect_timeout=0.5,
        socket_timeout=0.5,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )
    return RedisStorage(client, name)


def test_unreachable_redis_falls_back_to_closed_and_says_so(clock: FakeClock) -> None:
    circuit = Circuit(4, 8.0, name="dep", storage=dead_redis_storage(), clock=clock)
    with recording() as rec:
        assert circuit.call(ok(1)) == 1
        for _ in range(10):  # failures are the caller's, never a storage error
            assert outcome(circuit, fail()) == "Boom"
        assert circuit.call(ok(2)) == 2
        assert circuit.state == "closed"
        stats = circuit.stats()
        assert not stats.storage_ok
        assert stats.state == "closed"
        (failed,) = rec.of(events.BreakerStorageFailed)  # once per retry interval
        assert failed.name == "dep"
        assert failed.fallback_state == "closed"
        assert "ConnectionError" in failed.error
        clock.advance(5.0)  # storage_retry_interval: it tries Redis again, fails again
        assert circuit.call(ok(3)) == 3
    assert len(rec.of(events.BreakerStorageFailed)) == 2
    assert rec.of(events.BreakerStateChanged) == []


def test_unreachable_redis_with_fallback_open_refuses(clock: FakeClock) -> None:
    circuit = Circuit(
        4, 8.0, name="dep", storage=dead_redis_storage(), clock=clock, fallback_state="open",
        storage_retry_interval=2.0,
    )  # fmt: skip
    called: list[int] = []
    with recording() as rec:
        with pytest.raises(CircuitOpenError) as info:
            circuit.call(lambda: called.append(1))
        assert info.value.retry_after == pytest.approx(2.0)
        assert circuit.state == "open"
        assert circuit.retry_after() == pytest.approx(2.0)
    assert called == []
    assert rec.of(events.BreakerStorageFailed)[0].fallback_state == "open"
    assert len(rec.of(events.BreakerRejected)) == 1


def test_unreachable_redis_with_fallback_half_open_admits_bounded_probes(clock: FakeClock) -> None:
    circuit = Circuit(
        4, 8.0, name="dep", storage=dead_redis_storage(), clock=clock, fallback_state="half-open"
    )
    inner: list[str] = []

    def probe() -> str:
        inner.append(outcome(circuit, ok()))
        return "done"

    assert circuit.call(probe) == "done"
    assert inner == ["rejected"]
    assert circuit.call(ok(5)) == 5  # the slot was released


def test_control_and_inspection_never_raise_when_redis_is_down(clock: FakeClock) -> None:
    circuit = Circuit(4, 8.0, name="dep", storage=dead_redis_storage(), clock=clock)
    with recording() as rec:
        circuit.open()
        circuit.reset()
        assert circuit.state == "closed"
        assert circuit.retry_after() == 0.0
        assert circuit.stats().storage_ok is False
    assert len(rec.of(events.BreakerStorageFailed)) >= 1


def test_the_default_logging_hook_logs_the_storage_failure(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    circuit = Circuit(4, 8.0, name="logged", storage=dead_redis_storage("logged"), clock=clock)
    with caplog.at_level(logging.ERROR, logger="shared.resilience"):
        assert circuit.call(ok(1)) == 1
    records = [r for r in caplog.records if "breaker.storage_failed" in r.getMessage()]
    assert len(records) == 1
    fields = records[0].json_fields  # type: ignore[attr-defined]
    assert fields["fallback_state"] == "closed"
    assert fields["name"] == "logged"


@pytest.fixture
def private_redis() -> Iterator[services.Service]:
    """A redis-server of this test's own, which the test may stop."""
    with services.running(services.start_redis()) as svc:
        yield svc


@pytest.mark.redis
@pytest.mark.slow
def test_redis_stopping_mid_way_falls_back_and_recovers(
    private_redis: services.Service, clock: FakeClock
) -> None:
    def client() -> Any:
        return redis.Redis(
            host="127.0.0.1",
            port=private_redis.port,
            socket_connect_timeout=0.5,
            socket_timeout=0.5,
            retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
        )

    a = Circuit(4, 8.0, name="dep", storage=RedisStorage(client(), "dep"), clock=clock)
    b = Circuit(4, 8.0, name="dep", storage=RedisStorage(client(), "dep"), clock=clock)
    trip(a, 4)
    assert b.state == "open"

    private_redis.stop()
    with recording() as rec:
        # Both fall back to the declared state ("closed"): calls run, nothing leaks.
        assert a.call(ok(1)) == 1
        assert b.call(ok(2)) == 2
        assert outcome(a, fail()) == "Boom"
        assert a.state == b.state == "closed"
    failures = rec.of(events.BreakerStorageFailed)
    assert sorted(e.name for e in failures) == ["dep", "dep"]
    assert {e.fallback_state for e in failures} == {"closed"}

    # Redis comes back (empty, on the same port): after the retry interval they use it again.
    port = private_redis.port
    exe = "redis-server"
    revived = services.start_process(
        "redis", [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", ""], port
    )
    try:
        clock.advance(5.0)
        trip(a, 4)
        assert b.state == "open"
        assert outcome(b, ok()) == "rejected"
    finally:
        revived.stop()


# -- concurrency on Redis --------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_backed_calls_run_in_parallel(redis_client: Any, unique: str) -> None:
    circuit = Circuit(
        4, 8.0, name="par", storage=RedisStorage(redis_client, "par", namespace=unique)
    )
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        circuit.call(time.sleep, 0.1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    assert elapsed < 0.4, f"8 x 100 ms took {elapsed:.3f} s: calls were serialized"


def test_memory_storage_is_the_default() -> None:
    assert Circuit(name="m").stats().storage == MemoryStorage.__name__


# -- an outage costs one short timeout, then the fallback state (issue 12, defect 12) -----------


def _timed_call(circuit: Circuit, recorder: events.Recorder) -> float:
    with events.use_hooks(recorder):
        started = time.monotonic()
        assert circuit.call(lambda: "served") == "served"  # fallback_state "closed" admits it
        return time.monotonic() - started


def test_a_url_storage_fails_fast_when_redis_is_killed(unique: str) -> None:
    svc = services.start_redis()
    recorder = events.Recorder()
    try:
        storage = RedisStorage(f"redis://127.0.0.1:{svc.port}/0", unique)
        circuit = Circuit(2, 5.0, name=unique, storage=storage)
        assert circuit.call(lambda: 1) == 1
        assert storage.state == "closed"  # read from Redis itself: the URL built a client
        assert circuit.stats().storage_ok
        svc.stop()
        # A default redis-py client took 3.9 s per call here (its own retries).
        assert _timed_call(circuit, recorder) < 1.0
    finally:
        svc.stop()
    (failed,) = recorder.of(events.BreakerStorageFailed)
    assert failed.fallback_state == "closed"
    assert "ConnectionError" in failed.error


def test_a_url_storage_fails_fast_when_redis_stalls(unique: str) -> None:
    import socket

    recorder = events.Recorder()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        storage = RedisStorage(f"redis://127.0.0.1:{port}/0", unique)
        circuit = Circuit(2, 5.0, name=unique, storage=storage)
        # A default client waited out 5 s socket timeouts, 4 tries (about a minute).
        assert _timed_call(circuit, recorder) < 1.5
    (failed,) = recorder.of(events.BreakerStorageFailed)
    assert "Timeout" in failed.error
