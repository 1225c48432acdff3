"""Client-side pacing: a minimum-interval :class:`Throttle`, a sliding-window :class:`RateLimiter`.

All durations are SECONDS (the TypeScript seed used milliseconds: ``throttle(120)`` there is
``throttle(0.12)`` here, ``createRateLimiter(10, 60000)`` is ``RateLimiter(10, 60)``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from shared.resilience import events
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.errors import ConfigError, RateLimitExceeded
from shared.resilience.limiter_storage import Decision, LimiterStorage, MemoryLimiterStorage

__all__ = [
    "Decision",
    "LimiterStats",
    "LimiterStorage",
    "MemoryLimiterStorage",
    "RateLimiter",
    "Throttle",
    "ThrottleStats",
    "default_throttle",
    "throttle",
]

# Never sleep less than this between retries, so float rounding at a window's edge (or a clock
# that does not move while asleep) cannot spin.
_MIN_SLEEP = 1e-6

# Throttle keys are swept once there are this many, so one-off keys cannot grow the map forever.
_THROTTLE_SWEEP_AT = 1024


def _check_interval(min_interval: float) -> float:
    if not math.isfinite(min_interval) or min_interval < 0:
        raise ConfigError(
            f"min_interval must be a finite number of seconds >= 0, got {min_interval!r}"
        )
    return float(min_interval)


@dataclass(frozen=True, slots=True)
class ThrottleStats:
    """Counters of one :class:`Throttle` (``waited`` in seconds)."""

    name: str
    calls: int
    waits: int
    waited: float


class Throttle:
    """Spaces calls at least ``min_interval`` seconds apart, per key.

    Each caller reserves its start instant under a lock and then sleeps outside it, so
    concurrent callers are spaced out one after another rather than released together.
    """

    def __init__(
        self, min_interval: float = 0.0, *, clock: Clock = SYSTEM_CLOCK, name: str = "throttle"
    ) -> None:
        self.min_interval = _check_interval(min_interval)
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}  # the start instant reserved by each key's last call
        self._longest = self.min_interval
        self._calls = 0
        self._waits = 0
        self._waited = 0.0

    def reserve(self, key: str = "default", *, min_interval: float | None = None) -> float:
        """Claim the start instant of a call for ``key`` without sleeping: ``min_interval``
        seconds after the previous call's; returns the seconds to wait until then."""
        interval = self.min_interval if min_interval is None else _check_interval(min_interval)
        now = self._clock.monotonic()
        with self._lock:
            self._longest = max(self._longest, interval)
            if len(self._last) >= _THROTTLE_SWEEP_AT and key not in self._last:
                # Keys idle for longer than any interval in use can no longer make anyone wait.
                for k in [k for k, t in self._last.items() if t + self._longest <= now]:
                    del self._last[k]
            last = self._last.get(key)
            start = now if last is None else max(now, last + interval)
            self._last[key] = start
            self._calls += 1
            wait = start - now
            if wait > 0:
                self._waits += 1
                self._waited += wait
        return wait

    def wait(self, key: str = "default", *, min_interval: float | None = None) -> float:
        """Block until ``min_interval`` seconds after the previous call for ``key``; returns the
        seconds waited (0.0 when the call could go at once)."""
        wait = self.reserve(key, min_interval=min_interval)
        if wait > 0:
            self._clock.sleep(wait)
            events.emit(events.LimiterWaited(self.name, waited=wait))
        return wait

    def stats(self) -> ThrottleStats:
        """Calls, how many had to wait, and the total seconds waited."""
        with self._lock:
            return ThrottleStats(self.name, self._calls, self._waits, self._waited)

    def reset(self) -> None:
        """Forget every key's last call and zero the counters."""
        with self._lock:
            self._last.clear()
            self._longest = self.min_interval
            self._calls = self._waits = 0
            self._waited = 0.0


_DEFAULT_THROTTLE = Throttle(name="throttle")


def default_throttle() -> Throttle:
    """The process-wide :class:`Throttle` behind :func:`throttle`."""
    return _DEFAULT_THROTTLE


def throttle(min_interval: float, *, key: str = "default") -> float:
    """Block until ``min_interval`` SECONDS have passed since the previous call for ``key``.

    Process-wide (one shared :class:`Throttle`); returns the seconds waited.
    """
    return _DEFAULT_THROTTLE.wait(key, min_interval=min_interval)


@dataclass(frozen=True, slots=True)
class LimiterStats:
    """Counters of one :class:`RateLimiter` in this process (``waited`` in seconds)."""

    name: str
    limit: int
    window: float
    acquired: int
    rejected: int  # refusals by try_acquire
    waits: int  # wait_if_needed calls that had to wait
    waited: float
    timeouts: int  # wait_if_needed calls that raised RateLimitExceeded


class RateLimiter:
    """At most ``limit`` acquisitions in any ``window`` seconds (sliding window log).

    ``storage`` holds the window: a private :class:`MemoryLimiterStorage` by default (exact
    across threads), or a shared one such as ``RedisLimiterStorage`` (exact across processes;
    limiters with the same ``name`` on the same store share one window). Timestamps come from
    ``clock.time()`` so that processes agree; the store never lets a stamp go backwards (see
    :mod:`shared.resilience.limiter_storage`), so a process whose clock runs ahead makes the
    shared window stricter, never looser, and one running behind waits longer than it computed.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        name: str = "default",
        storage: LimiterStorage | None = None,
        clock: Clock | None = None,
    ) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigError(f"limit must be an integer >= 1, got {limit!r}")
        if not math.isfinite(window) or window <= 0:
            raise ConfigError(f"window must be a finite number of seconds > 0, got {window!r}")
        self.limit = limit
        self.window = float(window)
        self.name = name
        self._storage: LimiterStorage = MemoryLimiterStorage() if storage is None else storage
        self._clock: Clock = SYSTEM_CLOCK if clock is None else clock
        self._lock = threading.Lock()
        self._acquired = 0
        self._rejected = 0
        self._waits = 0
        self._waited = 0.0
        self._timeouts = 0

    def try_acquire(self) -> Decision:
        """Take a slot if one is free now; never blocks. Emits ``LimiterRejected`` on refusal."""
        decision = self._attempt()
        if not decision.allowed:
            with self._lock:
                self._rejected += 1
            events.emit(events.LimiterRejected(self.name, retry_after=decision.retry_after))
        return decision

    def wait_if_needed(self, timeout: float | None = None) -> float:
        """Block until a slot is taken; returns the seconds waited.

        Raises :class:`RateLimitExceeded` (without waiting further) as soon as the next slot
        cannot free within ``timeout`` seconds of the call; ``None`` waits as long as needed.
        """
        if timeout is not None and (math.isnan(timeout) or timeout < 0):
            raise ConfigError(f"timeout must be >= 0 seconds or None, got {timeout!r}")
        start = self._clock.monotonic()
        slept = False
        while True:
            decision = self._attempt()
            waited = self._clock.monotonic() - start
            if decision.allowed:
                if not slept:
                    return 0.0  # the time spent asking the store is not a wait
                with self._lock:
                    self._waits += 1
                    self._waited += waited
                events.emit(events.LimiterWaited(self.name, waited=waited))
                return waited
            pause = max(decision.retry_after, _MIN_SLEEP)
            if timeout is not None and waited + pause > timeout:
                with self._lock:
                    self._timeouts += 1
                events.emit(events.LimiterRejected(self.name, retry_after=decision.retry_after))
                raise RateLimitExceeded(self.name, decision.retry_after)
            self._clock.sleep(pause)
            slept = True

    def reset(self) -> None:
        """Forget every acquisition in this limiter's window (in its storage)."""
        self._storage.reset(self.name)

    def stats(self) -> LimiterStats:
        """A snapshot of this limiter's counters in this process."""
        with self._lock:
            return LimiterStats(
                name=self.name,
                limit=self.limit,
                window=self.window,
                acquired=self._acquired,
                rejected=self._rejected,
                waits=self._waits,
                waited=self._waited,
                timeouts=self._timeouts,
            )

    def _attempt(self) -> Decision:
        decision = self._storage.acquire(self.name, self.limit, self.window, self._clock.time())
        if decision.allowed:
            with self._lock:
                self._acquired += 1
        return decision
