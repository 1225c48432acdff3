"""Retry with exponential backoff, full jitter, a cap and a hard total deadline, on tenacity.

The first attempt runs without any tenacity machinery (it costs ~12 µs a call); tenacity is
imported and engaged only once a first attempt has failed with a retryable error.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from shared.resilience import events
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.errors import ConfigError
from shared.resilience.transient import is_transient, retry_after_of

if TYPE_CHECKING:
    import tenacity

T = TypeVar("T")
P = ParamSpec("P")


def full_jitter(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): U(0, min(cap, base·2ⁿ⁻¹))."""
    return rng.uniform(0.0, min(cap, base * 2.0 ** (attempt - 1)))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to retry: ``attempts`` in all (first call included), waits and deadline in seconds.

    ``deadline`` bounds the whole sequence from the first call: a retry whose wait would end past
    it is not made. A peer's ``Retry-After`` raises the wait to what it asked for (still bounded by
    the deadline). ``retry_on`` decides which exceptions are retried (default: transient ones).
    """

    attempts: int = 3
    base: float = 0.2
    cap: float = 5.0
    deadline: float | None = None
    retry_on: Callable[[BaseException], bool] = is_transient
    name: str = ""
    clock: Clock = SYSTEM_CLOCK
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        _validate(self.attempts, self.base, self.cap, self.deadline)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under this policy; re-raises the last exception when giving up."""
        started = self.clock.monotonic() if self.deadline is not None else None
        try:
            return fn()
        except Exception as exc:
            if self.attempts == 1 or not self.retry_on(exc):
                raise
            first_failure = exc
        return self._after_failure(fn, first_failure, started)

    def _after_failure(self, fn: Callable[[], T], first: Exception, started: float | None) -> T:
        # Imported here, on the first failure, not with the module (~20 ms of start-up).
        import tenacity

        clock = self.clock
        if started is None:
            started = clock.monotonic()
        pending: list[Exception] = [first]

        def attempt() -> T:
            # Replays the first failure so tenacity sees the whole sequence without calling fn
            # twice for attempt one.
            if pending:
                raise pending.pop()
            return fn()

        def wait(rs: tenacity.RetryCallState) -> float:
            exc = rs.outcome.exception() if rs.outcome else None
            delay = full_jitter(rs.attempt_number, self.base, self.cap, self.rng)
            asked = retry_after_of(exc) if exc is not None else None
            return max(delay, asked) if asked is not None else delay

        def stop(rs: tenacity.RetryCallState) -> bool:
            if rs.attempt_number >= self.attempts:
                return True
            if self.deadline is None:
                return False
            return clock.monotonic() - started + rs.upcoming_sleep > self.deadline

        def before_sleep(rs: tenacity.RetryCallState) -> None:
            exc = rs.outcome.exception() if rs.outcome else None
            events.emit(
                events.RetryScheduled(
                    self.name, attempt=rs.attempt_number, wait=rs.upcoming_sleep, error=repr(exc)
                )
            )

        def give_up(rs: tenacity.RetryCallState) -> T:
            exc = rs.outcome.exception() if rs.outcome else None
            events.emit(
                events.RetryGaveUp(
                    self.name,
                    attempts=rs.attempt_number,
                    elapsed=clock.monotonic() - started,
                    error=repr(exc),
                )
            )
            assert exc is not None  # give_up only runs after a failed attempt
            raise exc

        retrying = tenacity.Retrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception(self._should_retry),
            sleep=clock.sleep,
            before_sleep=before_sleep,
            retry_error_callback=give_up,
            reraise=True,
        )
        return retrying(attempt)

    def _should_retry(self, exc: BaseException) -> bool:
        return isinstance(exc, Exception) and self.retry_on(exc)


def retry(
    fn: Callable[[], T],
    attempts: int = 3,
    *,
    base: float = 0.2,
    cap: float = 5.0,
    deadline: float | None = None,
    retry_on: Callable[[BaseException], bool] = is_transient,
    name: str = "",
    clock: Clock | None = None,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn`` up to ``attempts`` times, backing off exponentially with full jitter.

    Waits and ``deadline`` are in seconds. Only transient errors are retried (see
    :func:`~shared.resilience.transient.is_transient`); anything else, and the last failure, is
    re-raised unchanged.
    """
    _validate(attempts, base, cap, deadline)
    clock = clock or SYSTEM_CLOCK
    # The success path builds nothing: the policy object exists only once something failed.
    started = clock.monotonic() if deadline is not None else None
    try:
        return fn()
    except Exception as exc:
        if attempts == 1 or not retry_on(exc):
            raise
        first_failure = exc
    policy = RetryPolicy(
        attempts=attempts,
        base=base,
        cap=cap,
        deadline=deadline,
        retry_on=retry_on,
        name=name,
        clock=clock,
        rng=rng or _RNG,
    )
    return policy._after_failure(fn, first_failure, started)


def retrying(
    attempts: int = 3,
    *,
    base: float = 0.2,
    cap: float = 5.0,
    deadline: float | None = None,
    retry_on: Callable[[BaseException], bool] = is_transient,
    name: str = "",
    clock: Clock | None = None,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of :func:`retry`; the policy is validated once, at decoration."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        policy = RetryPolicy(
            attempts=attempts,
            base=base,
            cap=cap,
            deadline=deadline,
            retry_on=retry_on,
            name=name or getattr(fn, "__qualname__", ""),
            clock=clock or SYSTEM_CLOCK,
            rng=_RNG,
        )

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return policy.call(lambda: fn(*args, **kwargs))

        return wrapper

    return decorate


def _validate(attempts: int, base: float, cap: float, deadline: float | None) -> None:
    if not isinstance(attempts, int) or attempts < 1:
        raise ConfigError(f"attempts must be an integer >= 1, got {attempts!r}")
    if not base > 0:
        raise ConfigError(f"base must be > 0 seconds, got {base!r}")
    if not cap >= base:
        raise ConfigError(f"cap must be >= base ({base}) seconds, got {cap!r}")
    if deadline is not None and not deadline > 0:
        raise ConfigError(f"deadline must be > 0 seconds or None, got {deadline!r}")


# One shared generator: creating a random.Random per call would cost more than the call itself.
_RNG = random.Random()
