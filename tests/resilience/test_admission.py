"""PriorityAdmission: reserve, premium first, bounded free queue, deadlines, events."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from shared.resilience import events
from shared.resilience.admission import PriorityAdmission, Ticket
from shared.resilience.clock import FakeClock
from shared.resilience.errors import AdmissionRejected, ConfigError


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def queued(adm: PriorityAdmission, plan: str, n: int) -> Callable[[], bool]:
    def check() -> bool:
        s = adm.stats()
        return (s.premium_waiting if plan == "premium" else s.free_waiting) == n

    return check


def has_length(items: list[str], n: int) -> Callable[[], bool]:
    return lambda: len(items) == n


class Caller:
    """Runs ``admit`` on its own thread and keeps the outcome."""

    def __init__(self, adm: PriorityAdmission, label: str, plan: Any, deadline: float) -> None:
        self.label = label
        self.ticket: Ticket | None = None
        self.error: AdmissionRejected | None = None
        self.finished: list[str] | None = None
        self._thread = threading.Thread(target=self._run, args=(adm, plan, deadline))

    def start(self, finished: list[str]) -> Caller:
        self.finished = finished
        self._thread.start()
        return self

    def _run(self, adm: PriorityAdmission, plan: Any, deadline: float) -> None:
        try:
            self.ticket = adm.admit(plan, deadline)
        except AdmissionRejected as exc:
            self.error = exc
        assert self.finished is not None
        self.finished.append(self.label)

    def join(self) -> None:
        self._thread.join(5)
        assert not self._thread.is_alive()


def drained(clock: FakeClock, **kwargs: Any) -> PriorityAdmission:
    """600 rpm (10 tokens/s), a bucket of 1.25 tokens with 0.25 reserved, emptied to the reserve."""
    adm = PriorityAdmission(600, premium_reserve=0.2, burst=1.25, clock=clock, **kwargs)
    assert adm.try_admit("free") is not None
    assert adm.stats().tokens == pytest.approx(0.25)
    return adm


def test_premium_may_use_the_reserve_free_may_not(clock: FakeClock) -> None:
    adm = PriorityAdmission(600, premium_reserve=0.2, burst=10, clock=clock)
    # Free requests take the bucket down to the 2 reserved tokens, not below.
    assert sum(1 for _ in range(20) if adm.try_admit("free")) == 8
    assert adm.try_admit("premium") is not None
    assert adm.try_admit("premium") is not None
    assert adm.try_admit("premium") is None
    s = adm.stats()
    assert (s.free_admitted, s.premium_admitted) == (8, 2)
    assert (s.free_rejected, s.premium_rejected) == (12, 1)


def test_immediate_rejection_says_when_to_retry(clock: FakeClock) -> None:
    adm = PriorityAdmission(600, premium_reserve=0.2, burst=10, clock=clock)
    for _ in range(8):
        adm.admit("free", 0)
    with pytest.raises(AdmissionRejected) as info:
        adm.admit("free", 0.05)  # needs 1 more token above the reserve: 0.1 s away
    assert (info.value.plan, info.value.reason) == ("free", "deadline")
    assert info.value.retry_after == pytest.approx(0.1)
    clock.advance(0.1)
    ticket = adm.admit("free", 0)
    assert ticket.plan == "free"
    assert ticket.waited == 0.0


def test_bucket_refills_at_capacity_rpm(clock: FakeClock) -> None:
    adm = PriorityAdmission(120, premium_reserve=0.0, burst=1, clock=clock)  # 2 per second
    admitted = 0
    for _ in range(600):  # one minute in 0.1 s steps
        admitted += adm.try_admit("premium") is not None
        clock.advance(0.1)
    # Admitted at 0.0, 0.5, ..., 59.5 s: the initial token plus one per 0.5 s refilled.
    assert admitted == 120


def test_premium_is_admitted_before_earlier_free_waiters(clock: FakeClock) -> None:
    adm = drained(clock)
    finished: list[str] = []
    callers = []
    for label, plan in [("f1", "free"), ("f2", "free"), ("p1", "premium"), ("p2", "premium")]:
        callers.append(Caller(adm, label, plan, deadline=10).start(finished))
        wait_until(queued(adm, plan, int(label[1])))
    for step in range(4):
        clock.advance(0.1)  # exactly one token: 0.25 -> 1.25
        adm.wake_all()
        wait_until(has_length(finished, step + 1))
    for c in callers:
        c.join()
    assert finished == ["p1", "p2", "f1", "f2"]
    waits = {c.label: c.ticket.waited for c in callers if c.ticket}
    assert waits == pytest.approx({"p1": 0.1, "p2": 0.2, "f1": 0.3, "f2": 0.4})


def test_free_queue_full_is_rejected_with_retry_after(clock: FakeClock) -> None:
    adm = drained(clock, free_queue_size=2)
    finished: list[str] = []
    queued = [Caller(adm, f"f{i}", "free", deadline=10).start(finished) for i in range(2)]
    wait_until(lambda: adm.stats().free_waiting == 2)
    with pytest.raises(AdmissionRejected) as info:
        adm.admit("free", 10)
    assert info.value.reason == "queue_full"
    # Two queued ahead, each needing a token above the 0.25 reserve, from 0.25 tokens now.
    assert info.value.retry_after == pytest.approx((2 + 1.25 - 0.25) / 10)
    assert adm.try_admit("premium") is None  # 0.25 tokens: not even premium
    for step in range(2):
        clock.advance(0.1)  # one token above the reserve: the head of the queue goes
        adm.wake_all()
        wait_until(has_length(finished, step + 1))
    for c in queued:
        c.join()
    assert finished == ["f0", "f1"]
    assert all(c.ticket is not None for c in queued)
    assert adm.stats().rejected_queue_full == 1


def test_zero_queue_never_queues_free(clock: FakeClock) -> None:
    adm = drained(clock, free_queue_size=0)
    with pytest.raises(AdmissionRejected, match="queue_full"):
        adm.admit("free", 60)


def test_waiter_is_rejected_once_its_deadline_passes(clock: FakeClock) -> None:
    adm = drained(clock)
    finished: list[str] = []
    free = Caller(adm, "f", "free", deadline=0.15).start(finished)  # fits: 0.1 s away
    wait_until(lambda: adm.stats().free_waiting == 1)
    premium = Caller(adm, "p", "premium", deadline=1).start(finished)
    wait_until(lambda: adm.stats().premium_waiting == 1)
    clock.advance(0.1)  # one token: the premium request takes it
    adm.wake_all()
    wait_until(lambda: finished == ["p"])
    clock.advance(0.1)  # a token again, but the free request's deadline has passed
    adm.wake_all()
    free.join()
    premium.join()
    assert premium.ticket is not None
    assert premium.ticket.waited == pytest.approx(0.1)
    assert free.ticket is None
    assert free.error is not None
    assert free.error.reason == "deadline"
    assert adm.stats().free_waiting == 0
    assert adm.try_admit("free") is not None  # the token it could not use is still there


def test_deadline_is_honoured_in_real_time() -> None:
    """Real clock: every admitted request waited no longer than its deadline."""
    adm = PriorityAdmission(1200, premium_reserve=0.2, free_queue_size=8, burst=2)
    rng = random.Random(7)
    results: list[tuple[float, float, float | None]] = []
    lock = threading.Lock()

    def request(plan: Any, deadline: float) -> None:
        started = time.monotonic()
        try:
            ticket: Ticket | None = adm.admit(plan, deadline)
        except AdmissionRejected:
            ticket = None
        with lock:
            results.append(
                (deadline, time.monotonic() - started, ticket.waited if ticket else None)
            )

    threads = []
    for _ in range(40):  # 40 requests in ~0.6 s against 20 per second
        plan = "premium" if rng.random() < 0.2 else "free"
        t = threading.Thread(target=request, args=(plan, rng.uniform(0.05, 0.3)))
        t.start()
        threads.append(t)
        time.sleep(0.015)
    for t in threads:
        t.join(5)
    admitted = [r for r in results if r[2] is not None]
    assert len(results) == 40
    assert 10 <= len(admitted) < 40  # overloaded: some admitted, some turned away
    for deadline, observed, waited in admitted:
        assert waited is not None
        assert waited <= deadline
        assert observed <= deadline + 0.05  # returning from admit is prompt


def test_events_and_metrics(clock: FakeClock, recorder: events.Recorder) -> None:
    adm = PriorityAdmission(600, premium_reserve=0.2, burst=10, clock=clock, name="q-prio1")
    for _ in range(9):
        adm.try_admit("free")
    adm.try_admit("premium")
    decided = recorder.of(events.AdmissionDecided)
    assert [(e.plan, e.outcome, e.reason) for e in decided] == [("free", "admitted", "")] * 8 + [
        ("free", "rejected", "deadline"),
        ("premium", "admitted", ""),
    ]
    assert {e.name for e in decided} == {"q-prio1"}
    assert events.METRICS.count(events.AdmissionDecided.kind, "q-prio1", "premium.admitted") == 1
    assert events.METRICS.count(events.AdmissionDecided.kind, "q-prio1", "free.rejected") == 1


def test_default_burst_is_one_second_of_capacity() -> None:
    adm = PriorityAdmission(600)
    assert adm.burst == 10
    assert adm.reserve == pytest.approx(2)
    small = PriorityAdmission(6, premium_reserve=0.5)
    assert small.burst == 2  # room for one free request above the reserve


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"capacity_rpm": 0}, "capacity_rpm must be a finite number > 0"),
        ({"capacity_rpm": math.inf}, "capacity_rpm must be a finite number > 0"),
        ({"capacity_rpm": 60, "premium_reserve": 1.0}, r"premium_reserve must be in \[0, 1\)"),
        ({"capacity_rpm": 60, "premium_reserve": -0.1}, r"premium_reserve must be in \[0, 1\)"),
        ({"capacity_rpm": 60, "free_queue_size": -1}, "free_queue_size must be an integer >= 0"),
        ({"capacity_rpm": 60, "free_queue_size": 2.5}, "free_queue_size must be an integer >= 0"),
        ({"capacity_rpm": 60, "premium_reserve": 0.5, "burst": 1.5}, "burst must be >= 1 / "),
    ],
)
def test_invalid_config(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PriorityAdmission(**kwargs)


def test_invalid_requests(clock: FakeClock) -> None:
    adm = PriorityAdmission(60, clock=clock)
    with pytest.raises(ConfigError, match="plan must be one of premium, free"):
        adm.admit("gold", 1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="deadline must be >= 0"):
        adm.admit("free", -1)


@pytest.mark.slow
def test_premium_stays_fast_at_one_and_a_half_times_capacity() -> None:
    """The benchmark's scenario scaled 10x faster: 6000 rpm offered 150 requests/s for 2 s."""
    adm = PriorityAdmission(6000, premium_reserve=0.2, free_queue_size=20, burst=10)
    deadlines = {"premium": 0.3, "free": 0.8}
    rng = random.Random(66)
    waits: dict[str, list[float]] = {"premium": [], "free": []}
    rejected = {"premium": 0, "free": 0}
    late: list[float] = []
    lock = threading.Lock()

    def request(plan: Any) -> None:
        try:
            ticket = adm.admit(plan, deadlines[plan])
        except AdmissionRejected:
            with lock:
                rejected[plan] += 1
            return
        with lock:
            waits[plan].append(ticket.waited)
            late.extend([ticket.waited] if ticket.waited > deadlines[plan] else [])

    threads = []
    t0 = time.monotonic()
    offset = 0.0
    while offset < 2.0:
        offset += rng.expovariate(150)
        time.sleep(max(0.0, t0 + offset - time.monotonic()))
        t = threading.Thread(target=request, args=("premium" if rng.random() < 0.2 else "free",))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(5)

    def p95(values: list[float]) -> float:
        return sorted(values)[math.ceil(0.95 * len(values)) - 1]

    assert late == []
    assert rejected["premium"] == 0
    assert rejected["free"] > 0  # overloaded: the free queue overflowed
    assert p95(waits["premium"]) < 0.1  # 1 s at the real scale
    assert p95(waits["free"]) > 5 * p95(waits["premium"])
