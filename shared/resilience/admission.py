"""Plan-priority admission (the seed's q-prio1): premium requests go first, free ones queue.

Capacity is a token bucket refilled at ``capacity_rpm / 60`` tokens per second and holding at
most ``burst`` tokens (default: one second of capacity, at least enough for one free request
above the reserve). Each admission takes one token, so over any interval of T seconds at most
``burst + capacity_rpm * T / 60`` requests are admitted.

* premium: admitted as soon as a token is free and no earlier premium request is waiting;
* free: admitted only from the top of the bucket — while taking a token leaves at least
  ``premium_reserve * burst`` tokens for premium arrivals — only when no premium request is
  waiting, first come first served, from a queue of at most ``free_queue_size`` waiters.

A request is rejected with :class:`AdmissionRejected` (``retry_after`` = the estimated seconds
until the backlog ahead of it drains) when the free queue is full (reason ``"queue_full"``), when
the backlog ahead of it cannot drain within its deadline (``"deadline"``, decided at once), or
when its deadline passes while it waits (``"deadline"``). A request is never admitted after its
deadline. Waiting uses one :class:`threading.Condition` per waiter on a shared lock and timed
waits computed from the refill rate: no polling. Those waits are real time, so a blocking
``admit`` needs a clock that runs at real speed; a ``FakeClock`` serves non-blocking decisions
(``deadline=0``) and tests that call :meth:`PriorityAdmission.wake_all` after moving it.

Caveat: the controller lives in one process. Behind N Cloud Functions instances each one admits
its own ``capacity_rpm``, so give each instance its share of the upstream quota.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from shared.resilience import events
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.errors import AdmissionRejected, ConfigError

Plan = Literal["premium", "free"]
PLANS: Final = ("premium", "free")

# Tokens are floats refilled by elapsed time; this slack keeps rounding from adding a wake-up.
_EPS = 1e-6


@dataclass(frozen=True, slots=True)
class Ticket:
    """An admitted request: its plan, the seconds it waited, and when (clock.monotonic())."""

    plan: Plan
    waited: float
    admitted_at: float


@dataclass(frozen=True, slots=True)
class AdmissionStats:
    """A snapshot of one controller's counters and queues (``tokens`` = free capacity now)."""

    name: str
    capacity_rpm: float
    premium_admitted: int
    free_admitted: int
    premium_rejected: int
    free_rejected: int
    rejected_queue_full: int
    rejected_deadline: int
    premium_waiting: int
    free_waiting: int
    tokens: float


class _Waiter:
    __slots__ = ("cond", "expires")

    def __init__(self, cond: threading.Condition, expires: float) -> None:
        self.cond = cond
        self.expires = expires


class PriorityAdmission:
    """Admits requests at ``capacity_rpm`` requests per minute, premium ahead of free.

    ``premium_reserve`` is the fraction (0 <= r < 1) of the bucket free requests may not draw
    on; ``free_queue_size`` bounds the free requests waiting at once (0 = never queue free ones).
    """

    def __init__(
        self,
        capacity_rpm: float,
        *,
        premium_reserve: float = 0.2,
        free_queue_size: int = 64,
        burst: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "admission",
    ) -> None:
        if not math.isfinite(capacity_rpm) or capacity_rpm <= 0:
            raise ConfigError(f"capacity_rpm must be a finite number > 0, got {capacity_rpm!r}")
        if not 0 <= premium_reserve < 1:
            raise ConfigError(f"premium_reserve must be in [0, 1), got {premium_reserve!r}")
        if (
            isinstance(free_queue_size, bool)
            or not isinstance(free_queue_size, int)
            or free_queue_size < 0
        ):
            raise ConfigError(f"free_queue_size must be an integer >= 0, got {free_queue_size!r}")
        self.capacity_rpm = float(capacity_rpm)
        self.rate = self.capacity_rpm / 60.0
        smallest = 1.0 / (1.0 - premium_reserve)
        if burst is None:
            burst = max(self.rate, smallest)
        elif not math.isfinite(burst) or burst < smallest - _EPS:
            raise ConfigError(
                f"burst must be >= 1 / (1 - premium_reserve) = {smallest:.3f} tokens "
                f"so a free request can ever be admitted, got {burst!r}"
            )
        self.burst = float(burst)
        self.reserve = premium_reserve * self.burst
        self.free_queue_size = free_queue_size
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock.monotonic()
        self._queues: dict[str, deque[_Waiter]] = {"premium": deque(), "free": deque()}
        self._admitted = {"premium": 0, "free": 0}
        self._rejected = {"premium": 0, "free": 0}
        self._reasons = {"queue_full": 0, "deadline": 0}

    def admit(self, plan: Plan, deadline: float) -> Ticket:
        """Block until ``plan``'s request is admitted; ``deadline`` is the most seconds it may wait.

        Raises :class:`AdmissionRejected` as described in the module notes; ``deadline=0`` makes
        the call non-blocking.
        """
        if plan not in PLANS:
            raise ConfigError(f"plan must be one of {', '.join(PLANS)}, got {plan!r}")
        if math.isnan(deadline) or deadline < 0:
            raise ConfigError(f"deadline must be >= 0 seconds, got {deadline!r}")
        start = self._clock.monotonic()
        with self._lock:
            ticket, reason, retry_after = self._decide(plan, start, deadline)
        if ticket is None:
            self._reject_event(plan, reason, self._clock.monotonic() - start)
            raise AdmissionRejected(plan, reason, retry_after)
        events.emit(events.AdmissionDecided(self.name, plan, "admitted", ticket.waited))
        return ticket

    def try_admit(self, plan: Plan) -> Ticket | None:
        """Admit now or return None; never waits (rejections are still counted and emitted)."""
        try:
            return self.admit(plan, 0.0)
        except AdmissionRejected:
            return None

    def wake_all(self) -> None:
        """Make every waiter re-check now (after a test moved a fake clock, say)."""
        with self._lock:
            for queue in self._queues.values():
                for waiter in queue:
                    waiter.cond.notify()

    def stats(self) -> AdmissionStats:
        """A consistent snapshot of this controller's counters."""
        with self._lock:
            self._refill(self._clock.monotonic())
            return AdmissionStats(
                name=self.name,
                capacity_rpm=self.capacity_rpm,
                premium_admitted=self._admitted["premium"],
                free_admitted=self._admitted["free"],
                premium_rejected=self._rejected["premium"],
                free_rejected=self._rejected["free"],
                rejected_queue_full=self._reasons["queue_full"],
                rejected_deadline=self._reasons["deadline"],
                premium_waiting=len(self._queues["premium"]),
                free_waiting=len(self._queues["free"]),
                tokens=self._tokens,
            )

    # Everything below runs with self._lock held.

    def _decide(
        self, plan: Plan, start: float, deadline: float
    ) -> tuple[Ticket | None, str, float]:
        queue = self._queues[plan]
        now = self._clock.monotonic()
        self._refill(now)
        if not queue and self._can_take(plan):
            return self._take(plan, start, now), "", 0.0
        backlog = self._backlog_time(plan, len(queue))
        if plan == "free" and len(queue) >= self.free_queue_size:
            return None, self._count_reject(plan, "queue_full"), backlog
        if start + deadline < now + backlog:
            return None, self._count_reject(plan, "deadline"), backlog
        waiter = _Waiter(threading.Condition(self._lock), start + deadline)
        queue.append(waiter)
        try:
            while True:
                now = self._clock.monotonic()
                self._refill(now)
                head = queue[0] is waiter
                if head and now <= waiter.expires and self._can_take(plan):
                    queue.popleft()
                    return self._take(plan, start, now), "", 0.0
                if now >= waiter.expires:
                    position = queue.index(waiter)
                    backlog = self._backlog_time(plan, position)
                    queue.remove(waiter)
                    return None, self._count_reject(plan, "deadline"), backlog
                timeout = waiter.expires - now
                if head:
                    timeout = min(timeout, self._time_to_turn(plan))
                waiter.cond.wait(None if math.isinf(timeout) else timeout)
        finally:
            # Whoever is at the front now (including behind a waiter that left) must re-check.
            self._wake_heads()

    def _refill(self, now: float) -> None:
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._stamp = now

    def _need(self, plan: Plan) -> float:
        return 1.0 if plan == "premium" else 1.0 + self.reserve

    def _can_take(self, plan: Plan) -> bool:
        if plan == "free" and self._queues["premium"]:
            return False
        return self._tokens + _EPS >= self._need(plan)

    def _time_to_turn(self, plan: Plan) -> float:
        if plan == "free" and self._queues["premium"]:
            return math.inf  # woken when the last premium waiter leaves
        return max(0.0, self._need(plan) - self._tokens) / self.rate

    def _backlog_time(self, plan: Plan, ahead: int) -> float:
        """Seconds until a request with ``ahead`` same-plan waiters before it could be admitted,
        counting the premium waiters a free request must also let through first."""
        tokens_needed = ahead + self._need(plan)
        if plan == "free":
            tokens_needed += len(self._queues["premium"])
        return max(0.0, tokens_needed - self._tokens) / self.rate

    def _take(self, plan: Plan, start: float, now: float) -> Ticket:
        self._tokens -= 1.0
        self._admitted[plan] += 1
        return Ticket(plan, max(0.0, now - start), now)

    def _count_reject(self, plan: Plan, reason: str) -> str:
        self._rejected[plan] += 1
        self._reasons[reason] += 1
        return reason

    def _wake_heads(self) -> None:
        for queue in self._queues.values():
            if queue:
                queue[0].cond.notify()

    def _reject_event(self, plan: Plan, reason: str, waited: float) -> None:
        events.emit(events.AdmissionDecided(self.name, plan, "rejected", waited, reason))
