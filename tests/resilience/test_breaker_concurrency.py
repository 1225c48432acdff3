"""Threads through one circuit: calls run in parallel, half-open admits only its probes, and the
bookkeeping stays consistent under contention."""

from __future__ import annotations

import contextvars
import itertools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pybreaker
import pytest

from shared.resilience import events
from shared.resilience.circuit import Circuit
from shared.resilience.clock import FakeClock
from shared.resilience.errors import CircuitOpenError
from tests.resilience.breaker_conftest_helpers import Boom, fail, ok, outcome, recording, trip

THREADS = 8
NAP = 0.1


def run_threads(n: int, target: Callable[[int], Any]) -> float:
    """Start ``n`` threads together on ``target(i)``; seconds until all finished.

    Each thread runs in a copy of the caller's context, so the event hooks the test chose
    (``events.use_hooks``, a context variable) receive the threads' events too.
    """
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def body(i: int) -> None:
        barrier.wait()
        try:
            target(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [
        threading.Thread(target=contextvars.copy_context().run, args=(body, i)) for i in range(n)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join(30)
    assert not errors, errors
    return time.perf_counter() - start


def test_calls_through_one_circuit_are_not_serialized() -> None:
    circuit = Circuit(4, 8.0, name="par")
    elapsed = run_threads(THREADS, lambda i: circuit.call(time.sleep, NAP))
    # Serialized (pybreaker 1.4.1) this takes 8 x 100 ms; here about one call's time.
    assert elapsed < 3 * NAP, f"{THREADS} x {NAP} s took {elapsed:.3f} s"


def test_failing_calls_are_not_serialized_either() -> None:
    circuit = Circuit(100, 8.0, name="par-fail")

    def failing(i: int) -> None:
        def nap_then_fail() -> None:
            time.sleep(NAP)
            raise Boom("down")

        with pytest.raises(Boom):
            circuit.call(nap_then_fail)

    elapsed = run_threads(THREADS, failing)
    assert elapsed < 3 * NAP
    assert circuit.stats().consecutive_failures == THREADS


def test_pybreaker_itself_serializes_for_comparison() -> None:
    cb = pybreaker.CircuitBreaker(fail_max=4, reset_timeout=8)
    elapsed = run_threads(4, lambda i: cb.call(time.sleep, 0.05))
    assert elapsed >= 4 * 0.05 * 0.9  # pybreaker#55: the lock is held during the call


@pytest.mark.parametrize("max_probes", [1, 2])
def test_half_open_admits_only_the_allowed_probes(max_probes: int) -> None:
    clock = FakeClock()
    circuit = Circuit(4, 8.0, name="probe", clock=clock, half_open_max_calls=max_probes)
    trip(circuit, 4)
    clock.advance(8.0)

    release = threading.Event()
    admitted = threading.Semaphore(0)
    ran: list[int] = []
    lock = threading.Lock()

    def probe() -> str:
        with lock:
            ran.append(1)
        admitted.release()
        assert release.wait(10)
        return "ok"

    results: list[str] = []

    def call(i: int) -> None:
        results.append(outcome(circuit, probe))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for _ in range(max_probes):
        assert admitted.acquire(timeout=10)
    # The probes are running; everyone else was (or will be) refused without running.
    deadline = time.monotonic() + 10
    while results.count("rejected") < THREADS - max_probes and time.monotonic() < deadline:
        time.sleep(0.005)
    assert results.count("rejected") == THREADS - max_probes
    assert circuit.stats().probes_in_flight == max_probes
    with pytest.raises(CircuitOpenError) as info:
        circuit.call(ok())
    assert info.value.retry_after == pytest.approx(1.0)
    release.set()
    for t in threads:
        t.join(10)
    assert len(ran) == max_probes
    assert results.count("ok") == max_probes
    assert circuit.state == "closed"


def test_a_late_failure_from_before_the_trip_does_not_reopen_a_probing_circuit() -> None:
    clock = FakeClock()
    circuit = Circuit(4, 8.0, name="late", clock=clock)
    slow_started, slow_may_fail = threading.Event(), threading.Event()
    probe_started, probe_may_finish = threading.Event(), threading.Event()
    results: dict[str, str] = {}

    def slow() -> None:
        slow_started.set()
        assert slow_may_fail.wait(10)
        raise Boom("late")

    def probe() -> str:
        probe_started.set()
        assert probe_may_finish.wait(10)
        return "ok"

    t_slow = threading.Thread(target=lambda: results.update(slow=outcome(circuit, slow)))
    t_slow.start()
    assert slow_started.wait(10)  # admitted while closed
    trip(circuit, 4)
    clock.advance(8.0)
    t_probe = threading.Thread(target=lambda: results.update(probe=outcome(circuit, probe)))
    t_probe.start()
    assert probe_started.wait(10)
    slow_may_fail.set()
    t_slow.join(10)
    assert results["slow"] == "Boom"  # re-raised to its caller...
    assert circuit.state == "half-open"  # ...but it belongs to the closed period: ignored
    probe_may_finish.set()
    t_probe.join(10)
    assert results["probe"] == "ok"
    assert circuit.state == "closed"


def test_hammering_keeps_the_bookkeeping_consistent() -> None:
    circuit = Circuit(
        3, 0.002, name="hammer", failure_rate_threshold=60, minimum_calls=5, window_size=20,
        half_open_max_calls=2,
    )  # fmt: skip
    counts = {"ok": 0, "Boom": 0, "rejected": 0}
    lock = threading.Lock()

    def worker(i: int) -> None:
        rng = random.Random(i)
        for _ in range(400):
            fn = fail() if rng.random() < 0.4 else ok()
            result = outcome(circuit, fn)
            with lock:
                counts[result] += 1
            if rng.random() < 0.05:
                time.sleep(0.001)

    with recording() as rec:
        run_threads(THREADS, worker)
    assert sum(counts.values()) == THREADS * 400
    assert counts["rejected"] > 0
    assert counts["rejected"] == len(rec.of(events.BreakerRejected))
    stats = circuit.stats()
    assert stats.probes_in_flight == 0
    assert stats.window_calls <= 20
    # Every transition continues from the previous one's target state.
    changes = rec.of(events.BreakerStateChanged)
    assert changes
    for before, after in itertools.pairwise(changes):
        assert before.new_state == after.old_state
    time.sleep(0.01)
    assert outcome(circuit, ok()) == "ok"  # it recovers: the probe slots were not leaked
    assert circuit.state == "closed"
