"""Retry with exponential backoff, full jitter, a cap and a hard total deadline, on tenacity.

The strategies are tenacity's: ``stop_after_attempt | stop_before_delay`` for the attempts and
the deadline, ``wait_random_exponential`` for full jitter under a cap, ``retry_if_exception``
for the classification. Only :func:`wait_retry_after`, which raises a wait to what the peer asked
for, is ours: tenacity has no wait that reads ``Retry-After``.

The first attempt runs bare (a call, a ``try``): tenacity is imported and engaged only once it has
failed with a retryable error, and then continues from that recorded outcome, so the success path
stays as cheap as the call itself.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, ParamSpec, TypedDict, TypeVar, Unpack

from shared.resilience import events
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.errors import ConfigError
from shared.resilience.transient import is_transient, retry_after_of

if TYPE_CHECKING:
    import tenacity

    Wait = Callable[[tenacity.RetryCallState], float]

__all__ = [
    "RetryOptions",
    "RetryPolicy",
    "clear_policies",
    "retry",
    "retrying",
    "wait_retry_after",
]

T = TypeVar("T")
P = ParamSpec("P")


class RetryOptions(TypedDict, total=False):
    """The keyword options of :class:`RetryPolicy`, :func:`retry` and :func:`retrying`."""

    base: float
    cap: float
    deadline: float | None
    retry_on: Callable[[BaseException], bool]
    name: str
    clock: Clock


def wait_retry_after(otherwise: Wait) -> Wait:
    """A wait strategy: ``otherwise``'s wait, raised to the seconds the failed peer asked for.

    The peer's wish comes from :func:`~shared.resilience.transient.retry_after_of` (a
    ``retry_after`` attribute or a ``Retry-After`` header); it is not capped, only the deadline
    bounds it (``stop_before_delay`` gives up rather than wait past it).
    """

    def wait(state: tenacity.RetryCallState) -> float:
        delay = otherwise(state)
        failure = state.outcome.exception() if state.outcome is not None else None
        asked = retry_after_of(failure) if failure is not None else None
        return delay if asked is None else max(delay, asked)

    return wait


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How to retry: ``attempts`` in all (first call included), waits and deadline in seconds.

    The wait after failed attempt n is uniform in [0, min(cap, base·2ⁿ⁻¹)] (full jitter), raised
    to a peer's ``Retry-After``. ``deadline`` bounds the whole sequence from the first call: a
    retry whose wait would end at or past it is not made. ``retry_on`` decides which exceptions
    are retried (default: transient ones, never an open breaker or a 4xx). Time is read from
    ``clock`` and waits go to ``clock.sleep``.
    """

    attempts: int = 3
    _: KW_ONLY
    base: float = 0.2
    cap: float = 5.0
    deadline: float | None = None
    retry_on: Callable[[BaseException], bool] = is_transient
    name: str = ""
    clock: Clock = SYSTEM_CLOCK

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise ConfigError(f"attempts must be an integer >= 1, got {self.attempts!r}")
        if self.attempts < 1:
            raise ConfigError(f"attempts must be an integer >= 1, got {self.attempts!r}")
        if not self.base > 0:
            raise ConfigError(f"base must be > 0 seconds, got {self.base!r}")
        if not self.cap >= self.base:
            raise ConfigError(f"cap must be >= base ({self.base}) seconds, got {self.cap!r}")
        if self.deadline is not None and not self.deadline > 0:
            raise ConfigError(f"deadline must be > 0 seconds or None, got {self.deadline!r}")

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` under this policy; re-raises the last exception when giving up."""
        started = self.clock.monotonic() if self.deadline is not None else None
        try:
            return fn()
        except Exception as exc:
            if self.attempts == 1 or not self.retry_on(exc):
                raise
            failure = exc
        # Outside the except block, so later failures do not chain onto this one.
        return self._continue(fn, failure, started)

    def _continue(self, fn: Callable[[], T], failure: Exception, started: float | None) -> T:
        # Imported here, on the first failure, not with the module (~20 ms of start-up).
        import tenacity

        clock = self.clock
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.attempts)
        if self.deadline is not None:
            stop |= tenacity.stop_before_delay(self.deadline)
        retrying = tenacity.Retrying(
            stop=stop,
            wait=wait_retry_after(tenacity.wait_random_exponential(self.base, self.cap)),
            retry=tenacity.retry_if_exception(self._retryable),
            sleep=clock.sleep,
            before_sleep=self._scheduled,
            retry_error_callback=self._gave_up,
        )
        # tenacity's own loop (Retrying.__call__) with two differences: attempt one is the call
        # that already failed, recorded rather than made again; and every timestamp is re-read
        # from our clock (tenacity reads time.monotonic() itself), so the deadline follows it.
        retrying.begin()
        state = tenacity.RetryCallState(retrying, fn, (), {})
        state.start_time = clock.monotonic() if started is None else started
        state.set_exception((type(failure), failure, failure.__traceback__))
        state.outcome_timestamp = clock.monotonic()
        while True:
            action = retrying.iter(state)
            if isinstance(action, tenacity.DoAttempt):
                try:
                    result = fn()
                except BaseException as exc:  # noqa: BLE001 - tenacity classifies, re-raises
                    state.set_exception((type(exc), exc, exc.__traceback__))
                else:
                    state.set_result(result)
                state.outcome_timestamp = clock.monotonic()
            elif isinstance(action, tenacity.DoSleep):
                state.prepare_for_next_attempt()
                retrying.sleep(action)
            else:
                return action  # type: ignore[no-any-return]

    def _retryable(self, exc: BaseException) -> bool:
        # Interrupts and exits are never retried, whatever retry_on says.
        return isinstance(exc, Exception) and self.retry_on(exc)

    def _scheduled(self, state: tenacity.RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome is not None else None
        events.emit(
            events.RetryScheduled(
                self.name,
                attempt=state.attempt_number,
                wait=state.upcoming_sleep,
                error=repr(failure),
            )
        )

    def _gave_up(self, state: tenacity.RetryCallState) -> object:
        assert state.outcome is not None  # tenacity gives up only after a failed attempt
        events.emit(
            events.RetryGaveUp(
                self.name,
                attempts=state.attempt_number,
                elapsed=self.clock.monotonic() - state.start_time,
                error=repr(state.outcome.exception()),
            )
        )
        return state.outcome.result()  # re-raises the last failure, unchanged


# Policies by their options: retry() is called with the same few options at each call site, and
# building a validated frozen policy costs more than the call it guards.
_policies = functools.lru_cache(maxsize=128)(RetryPolicy)
_policy: Callable[..., RetryPolicy] = _policies  # typed by RetryOptions at retry()


def retry(fn: Callable[[], T], attempts: int = 3, **options: Unpack[RetryOptions]) -> T:
    """Call ``fn`` up to ``attempts`` times under a :class:`RetryPolicy` of these options.

    Waits and ``deadline`` are in seconds. Only transient errors are retried (see
    :func:`~shared.resilience.transient.is_transient`); anything else, and the last failure, is
    re-raised unchanged.
    """
    try:
        policy = _policy(attempts, **options)
    except TypeError:  # an unhashable option (a callable dataclass, say) cannot be memoized
        policy = RetryPolicy(attempts, **options)
    return policy.call(fn)


def retrying(
    attempts: int = 3, **options: Unpack[RetryOptions]
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Decorator form of :func:`retry`; validated once, at decoration. ``name`` defaults to the
    function's qualified name."""
    policy = RetryPolicy(attempts, **options)

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        named = policy if policy.name else dataclasses.replace(policy, name=fn.__qualname__)

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            return named.call(functools.partial(fn, *args, **kwargs))

        return wrapper

    return decorate


def clear_policies() -> None:
    """Forget the memoized policies of :func:`retry` (they hold their clocks and predicates)."""
    _policies.cache_clear()
