"""Circuit breaker: pybreaker's state machine, without pybreaker's lock around the guarded call.

``Circuit(fail_max=4, reset_timeout=8.0)`` behaves as the seed's ``new Circuit(4, 8000)``: after
4 consecutive failures it opens for 8 s and refuses calls with
:class:`~shared.resilience.errors.CircuitOpenError`; then it lets one probe through (half-open);
the probe's success closes it, its failure opens it for another 8 s.

What it adds to pybreaker 1.4.1:

* **No serialized calls.** ``pybreaker.CircuitBreaker.call`` holds its lock while the guarded
  function runs (pybreaker#55): 8 threads x 100 ms take 0.8 s. Here the lock is held only to
  decide admission before the call and to record the outcome after it; the call runs unlocked.
  In half-open at most ``half_open_max_calls`` probes run at once; the rest are refused.
* **Business errors never trip it.** ``exclude`` takes exception types and predicates; by
  default :func:`~shared.resilience.transient.is_business_error` is excluded too, so a 400 is
  re-raised to the caller and counts as a success for the breaker.
* **Rate-based trips**, as resilience4j's count-based sliding window: over the last
  ``window_size`` calls (once there are ``minimum_calls``), open when the failure rate or the
  rate of calls slower than ``slow_call_duration`` reaches its threshold (percent, 0-100).
* **Shared state that works.** With :class:`~shared.resilience.breaker_storage.RedisStorage`
  every instance sees the same state *and the same opened-at instant* (wall time), so all of them
  reach half-open together (pybreaker#24). When the storage fails the circuit acts as
  ``fallback_state`` (default "closed") for ``storage_retry_interval`` seconds, reports
  :class:`~shared.resilience.events.BreakerStorageFailed` once per such period, and never lets a
  storage error reach the caller.
* **Events**: :class:`~shared.resilience.events.BreakerStateChanged` on every transition (also
  when a transition made by another instance is first seen here), and
  :class:`~shared.resilience.events.BreakerRejected` on every refusal. Plain successes emit
  nothing.
* **Named registry**: :func:`breaker` gets or creates the one circuit of a dependency.

Outcomes of calls admitted before a transition are ignored (a slow failure that lands after the
circuit already opened does not extend the open period, nor does it re-open a half-open circuit
whose probe is running). Circuits sharing a storage (one RedisStorage key across processes, or
one MemoryStorage object in a process) act as one breaker: each reconciles its local view with the
stored state before admitting a call and before recording its outcome. The state, opened-at and
consecutive-failure count are shared; the sliding window and the half-open probe limit are per
instance.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any, Final, Literal, ParamSpec, TypeVar, cast

import pybreaker

from shared.resilience import events
from shared.resilience.breaker_storage import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    STATES,
    BreakerStorage,
    MemoryStorage,
)
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.errors import CircuitOpenError, ConfigError, StorageError
from shared.resilience.transient import is_business_error

__all__ = [
    "BreakerStats",
    "Circuit",
    "CircuitConfig",
    "ExcludeRule",
    "State",
    "breaker",
    "breakers",
    "reset_breakers",
]

P = ParamSpec("P")
T = TypeVar("T")

State = Literal["closed", "open", "half-open"]
#: An exception type (matched with ``isinstance``) or a predicate on the exception.
ExcludeRule = type[BaseException] | Callable[[BaseException], bool]

logger = logging.getLogger("shared.resilience.circuit")

# Tickets tell the outcome recorder how a call was admitted. Admitted by the state machine:
# ``epoch * 2`` (normal) or ``epoch * 2 + 1`` (half-open probe), epoch >= 1. Admitted by the
# fallback state while the storage is failing: the negative values below.
_UNTRACKED: Final = -1
_FALLBACK_PROBE: Final = -2


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    """Everything a :class:`Circuit` was built with (the registry compares these)."""

    fail_max: int | None
    reset_timeout: float
    exclude: tuple[ExcludeRule, ...]
    exclude_business_errors: bool
    success_threshold: int
    failure_rate_threshold: float | None
    slow_call_rate_threshold: float | None
    slow_call_duration: float | None
    window_size: int
    minimum_calls: int
    half_open_max_calls: int
    storage: BreakerStorage | None
    fallback_state: State
    storage_retry_interval: float
    clock: Clock | None


@dataclass(frozen=True, slots=True)
class BreakerStats:
    """A snapshot of one circuit. Rates are percentages over the sliding window (None if empty)."""

    name: str
    state: State
    consecutive_failures: int
    half_open_successes: int
    opened_at: float | None
    retry_after: float
    window_calls: int
    window_failures: int
    window_slow_calls: int
    failure_rate: float | None
    slow_call_rate: float | None
    probes_in_flight: int
    storage: str
    storage_ok: bool


class _Window:
    """Outcomes of the last ``size`` calls: bit 0 = failed, bit 1 = slow."""

    __slots__ = ("failures", "outcomes", "size", "slow")

    def __init__(self, size: int) -> None:
        self.size = size
        self.outcomes: deque[int] = deque(maxlen=size)
        self.failures = 0
        self.slow = 0

    def add(self, failed: bool, slow: bool) -> None:
        outcomes = self.outcomes
        if len(outcomes) == self.size:
            old = outcomes[0]
            self.failures -= old & 1
            self.slow -= old >> 1
        outcomes.append(failed | (slow << 1))
        self.failures += failed
        self.slow += slow

    def clear(self) -> None:
        self.outcomes.clear()
        self.failures = self.slow = 0


class _Listener(pybreaker.CircuitBreakerListener):
    """Turns pybreaker's state changes into the circuit's bookkeeping and events."""

    def __init__(self, circuit: Circuit) -> None:
        self._circuit = circuit

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        old = old_state.name if old_state is not None else new_state.name
        self._circuit._on_transition(old, new_state.name, self._circuit._reason)


class _Machine(pybreaker.CircuitBreaker):
    """pybreaker's state machine, driven by :class:`Circuit` under its own short lock.

    Never ``.call()``-ed: that would hold the lock for the whole guarded call. Circuit decides
    admission itself and feeds outcomes to the state objects' ``_handle_success`` /
    ``_handle_error``; transitions go through pybreaker's ``open``/``close`` and state classes,
    and reach Circuit through a listener.
    """

    def __init__(self, circuit: Circuit, storage: BreakerStorage, config: CircuitConfig) -> None:
        # pybreaker reads the storage's state while constructing; give it a private memory
        # storage so building a circuit never touches Redis, then install the real one. The
        # first admission reads the real state.
        super().__init__(
            fail_max=config.fail_max if config.fail_max is not None else sys.maxsize,
            reset_timeout=config.reset_timeout,
            success_threshold=config.success_threshold,
            listeners=[_Listener(circuit)],
            state_storage=MemoryStorage(),
            name=circuit.name,
            throw_new_error_on_trip=False,
        )
        self._state_storage: BreakerStorage = storage
        self._circuit = circuit
        rules = tuple(config.exclude)
        self._excluded_types = tuple(r for r in rules if isinstance(r, type))
        predicates = [r for r in rules if not isinstance(r, type)]
        if config.exclude_business_errors:
            predicates.insert(0, is_business_error)
        self._predicates = tuple(predicates)

    def is_system_error(self, exception: BaseException) -> bool:
        # pybreaker's version tests ``type(rule) is type``, which calls an exception class with
        # a custom metaclass as a predicate (and so excludes everything).
        if isinstance(exception, self._excluded_types):
            return False
        for predicate in self._predicates:
            try:
                if predicate(exception):
                    return False
            except Exception:
                logger.exception("breaker %r: exclude predicate %r failed", self.name, predicate)
        return True

    def open(self) -> bool:
        # pybreaker stamps datetime.now(); we use the circuit's clock and write state and
        # instant together.
        with self._lock:
            self._state_storage.trip(self._circuit._instant())
            self.state = OPEN  # a new state object + listeners
        return False

    def enter(self, state: str) -> None:
        """Adopt ``state`` (already written to the storage) and notify listeners."""
        with self._lock:
            self.state = state

    def observe(self, state: str) -> str:
        """Adopt a state another instance wrote, without pybreaker's resets of shared counters."""
        with self._lock:
            old = self._state.name
            self._state = self._create_new_state(state, prev_state=self._state, notify=False)
        return str(old)


def _fail(state: pybreaker.CircuitBreakerState, exc: BaseException) -> None:
    """Feed a failure to pybreaker's state (which re-raises ``exc`` when it trips)."""
    traceback = exc.__traceback__
    try:
        state._handle_error(exc, reraise=False)
    except BaseException as raised:
        if raised is not exc:
            raise
    finally:
        exc.__traceback__ = traceback


class Circuit:
    """A circuit breaker for one dependency. See the module docstring.

    ``call(fn, *args, **kwargs)`` runs ``fn`` if the circuit admits it, else raises
    :class:`~shared.resilience.errors.CircuitOpenError` without running it. A circuit is also a
    decorator. ``fail_max=None`` disables the consecutive-failure rule (then a rate threshold
    must be set). Times are seconds; rate thresholds are percentages (resilience4j's ``50`` is
    50 %); a call is slow when it takes longer than ``slow_call_duration`` on ``clock``.

    A refusal's ``retry_after`` is the rest of the open period, or ``min(1, reset_timeout)`` when
    the circuit is half-open and its probes are all running. While the storage fails, the circuit
    acts as ``fallback_state`` and retries the storage every ``storage_retry_interval`` seconds.

    Guards synchronous functions: a coroutine or generator function would only be created
    inside the breaker, and its outcome never seen.
    """

    def __init__(
        self,
        fail_max: int | None = 4,
        reset_timeout: float = 8.0,
        *,
        name: str = "default",
        exclude: Iterable[ExcludeRule] = (),
        exclude_business_errors: bool = True,
        success_threshold: int = 1,
        failure_rate_threshold: float | None = None,
        slow_call_rate_threshold: float | None = None,
        slow_call_duration: float | None = None,
        window_size: int = 100,
        minimum_calls: int = 10,
        half_open_max_calls: int = 1,
        storage: BreakerStorage | None = None,
        fallback_state: State = "closed",
        storage_retry_interval: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        config = CircuitConfig(
            fail_max=fail_max,
            reset_timeout=reset_timeout,
            exclude=tuple(exclude),
            exclude_business_errors=exclude_business_errors,
            success_threshold=success_threshold,
            failure_rate_threshold=failure_rate_threshold,
            slow_call_rate_threshold=slow_call_rate_threshold,
            slow_call_duration=slow_call_duration,
            window_size=window_size,
            minimum_calls=minimum_calls,
            half_open_max_calls=half_open_max_calls,
            storage=storage,
            fallback_state=fallback_state,
            storage_retry_interval=storage_retry_interval,
            clock=clock,
        )
        _validate(name, config)
        self.name = name
        self.config = config
        self._clock: Clock = clock or SYSTEM_CLOCK
        self._storage: BreakerStorage = storage if storage is not None else MemoryStorage(name)
        self._shared = self._storage.shared
        # Instants that may be compared across processes are wall time; local ones monotonic.
        self._instant: Callable[[], float] = (
            self._clock.time if self._shared else self._clock.monotonic
        )
        self._reset_timeout = float(reset_timeout)
        self._fail_max = fail_max
        self._half_open_max = half_open_max_calls
        self._busy_retry_after = min(1.0, self._reset_timeout)
        self._failure_rate = failure_rate_threshold
        self._slow_rate = slow_call_rate_threshold
        self._slow_duration = slow_call_duration if slow_call_rate_threshold is not None else None
        self._minimum_calls = minimum_calls
        self._window = (
            _Window(window_size)
            if failure_rate_threshold is not None or slow_call_rate_threshold is not None
            else None
        )
        self._fallback_state: str = fallback_state
        self._storage_retry_interval = storage_retry_interval
        # The fast path: a memory-backed, count-only circuit needs no lock to admit a call
        # while closed nor to record a success after one.
        self._fast = not self._shared and self._window is None

        self._lock = threading.Lock()
        self._emit_lock = threading.RLock()
        self._epoch = 1
        self._ticket = 2  # epoch * 2: the ticket of a normal call admitted now
        self._probes = 0  # half-open probes running (this instance)
        self._fallback_probes = 0
        self._degraded_until = 0.0  # monotonic; non-zero while the storage is failing
        self._seen_fails = 0  # shared storage: the failure count at the last read
        # The state of ``self._machine._state`` (this instance's view), kept by _on_transition.
        # Another circuit on the same storage may have moved the stored state since.
        self._view: str = CLOSED
        self._reason = ""
        self._pending: list[events.Event] = []
        self._machine = _Machine(self, self._storage, config)

    # -- calling -------------------------------------------------------------------------------
    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker; its exceptions pass through."""
        ticket = self._ticket  # read before the state: a transition in between voids the ticket
        # Stored and local state must both be closed: a circuit sharing this memory storage may
        # have moved it, and then _admit reconciles this instance's view before admitting.
        if self._fast and self._storage.state == CLOSED and self._view == CLOSED:
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                self._after(ticket, exc, 0.0)
                raise
            if self._storage.counter:  # a success only matters after a failure
                self._after(ticket, None, 0.0)
            return result
        ticket = self._admit()
        start = self._clock.monotonic() if self._slow_duration is not None else 0.0
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._after(ticket, exc, start)
            raise
        self._after(ticket, None, start)
        return result

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Use the circuit as a decorator."""

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(fn, *args, **kwargs)

        return guarded

    # -- admission (before the call) ------------------------------------------------------------
    def _admit(self) -> int:
        try:
            with self._lock:
                if not self._shared:
                    return self._admit_stored()
                if self._degraded_until:
                    if self._clock.monotonic() < self._degraded_until:
                        return self._admit_fallback()
                    self._degraded_until = 0.0
                try:
                    return self._admit_stored()
                except StorageError as exc:
                    self._storage_failed(exc)
                    return self._admit_fallback()
        finally:
            if self._pending:
                self._flush()

    def _admit_stored(self) -> int:
        storage = self._storage
        for _ in range(3):
            state, opened_at, fails = storage.load()
            self._seen_fails = fails
            if state != self._machine._state.name:
                self._observe(state)
            if state == CLOSED:
                return self._ticket
            if state == HALF_OPEN:
                return self._admit_probe()
            remaining = self._remaining(opened_at)
            if remaining > 0.0:
                raise self._refuse(remaining)
            if storage.try_half_open(opened_at):
                self._reason = f"reset timeout of {self._reset_timeout:g} s elapsed"
                self._machine.enter(HALF_OPEN)
                return self._admit_probe()
            # Another instance moved it first: read again.
        raise self._refuse(self._busy_retry_after)

    def _admit_probe(self) -> int:
        if self._probes < self._half_open_max:
            self._probes += 1
            return self._ticket | 1
        raise self._refuse(self._busy_retry_after)

    def _admit_fallback(self) -> int:
        fallback = self._fallback_state
        if fallback == CLOSED:
            return _UNTRACKED
        if fallback == HALF_OPEN and self._fallback_probes < self._half_open_max:
            self._fallback_probes += 1
            return _FALLBACK_PROBE
        if fallback == OPEN:
            raise self._refuse(max(0.0, self._degraded_until - self._clock.monotonic()))
        raise self._refuse(self._busy_retry_after)

    def _refuse(self, retry_after: float) -> CircuitOpenError:
        self._pending.append(events.BreakerRejected(self.name, retry_after))
        return CircuitOpenError(self.name, retry_after)

    def _remaining(self, opened_at: float | None) -> float:
        if opened_at is None:
            return 0.0
        return opened_at + self._reset_timeout - self._instant()

    # -- outcomes (after the call) ----------------------------------------------------------------
    def _after(self, ticket: int, exc: BaseException | None, start: float) -> None:
        slow = (
            self._slow_duration is not None
            and self._clock.monotonic() - start > self._slow_duration
        )
        try:
            with self._lock:
                self._record(ticket, exc, slow)
        finally:
            if self._pending:
                self._flush()

    def _record(self, ticket: int, exc: BaseException | None, slow: bool) -> None:
        if ticket < 0:
            if ticket == _FALLBACK_PROBE and self._fallback_probes:
                self._fallback_probes -= 1
            return
        probe = ticket & 1
        if probe and ticket >> 1 == self._epoch:
            self._probes -= 1
        machine = self._machine
        failed = exc is not None and machine.is_system_error(exc)
        if self._shared:
            if self._degraded_until:
                return  # the storage is failing: nowhere to record
            if failed or probe or self._seen_fails:  # something to write: read the truth first
                try:
                    state, _, self._seen_fails = self._storage.load()
                    if state != machine._state.name:
                        self._observe(state)
                except StorageError as error:
                    self._storage_failed(error)
                    return
            elif self._window is None:
                return
        else:
            # Another circuit on this memory storage may have moved it during the call: adopt
            # its state first (a new epoch, so this outcome is then ignored, as on Redis).
            state = self._storage.state
            if state != machine._state.name:
                self._observe(state)
        if ticket >> 1 != self._epoch:
            return  # admitted before a transition: this outcome belongs to the past
        try:
            self._apply(failed, exc, slow, bool(probe))
        except StorageError as error:
            self._storage_failed(error)

    def _apply(self, failed: bool, exc: BaseException | None, slow: bool, probe: bool) -> None:
        machine = self._machine
        state = machine._state
        if state.name == CLOSED:
            window = self._window
            if window is not None:
                window.add(failed, slow)
            if failed:
                assert exc is not None
                self._reason = f"{self._fail_max} consecutive failures (last: {_describe(exc)})"
                _fail(state, exc)
                if self._shared:
                    self._seen_fails += 1
            elif self._storage_counter_nonzero():
                state._handle_success()
                self._seen_fails = 0
            if window is not None and machine._state is state:
                self._check_rates(window)
        elif state.name == HALF_OPEN:
            if failed:
                assert exc is not None
                self._reason = f"probe failed ({_describe(exc)})"
                _fail(state, exc)
            elif slow:
                self._reason = f"probe slower than {self._slow_duration:g} s"
                machine.open()
            else:
                self._reason = "probe succeeded"
                state._handle_success()
                self._seen_fails = 0

    def _storage_counter_nonzero(self) -> bool:
        return bool(self._seen_fails) if self._shared else bool(self._storage.counter)

    def _check_rates(self, window: _Window) -> None:
        calls = len(window.outcomes)
        if calls < self._minimum_calls:
            return
        for count, threshold, what in (
            (window.failures, self._failure_rate, "failure rate"),
            (window.slow, self._slow_rate, "slow-call rate"),
        ):
            if threshold is not None and count * 100.0 >= threshold * calls:
                self._reason = (
                    f"{what} {100.0 * count / calls:.1f}% >= {threshold:g}% "
                    f"over the last {calls} calls"
                )
                self._machine.open()
                return

    # -- transitions ---------------------------------------------------------------------------
    def _observe(self, state: str) -> None:
        old = self._machine.observe(state)
        self._on_transition(old, state, "changed by another instance")

    def _on_transition(self, old: str, new: str, reason: str) -> None:
        """Called under the lock for every change of the local state object."""
        self._view = new
        self._epoch += 1
        self._ticket = self._epoch * 2
        self._probes = 0
        if self._window is not None:
            self._window.clear()
        if old != new:
            self._pending.append(events.BreakerStateChanged(self.name, old, new, reason))

    def _storage_failed(self, exc: StorageError) -> None:
        self._degraded_until = max(
            self._clock.monotonic() + self._storage_retry_interval, sys.float_info.min
        )
        self._fallback_probes = 0
        self._pending.append(events.BreakerStorageFailed(self.name, str(exc), self._fallback_state))

    def _flush(self) -> None:
        # Hooks run outside the state lock (a hook may read the circuit); the emit lock keeps
        # events in the order the transitions happened when several threads flush at once.
        with self._emit_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            for event in pending:
                events.emit(event)

    def _locked(self, action: Callable[[], T], fallback: T) -> T:
        """Run ``action`` under the lock; a storage failure yields ``fallback`` (and an event)."""
        try:
            with self._lock:
                if self._degraded_until and self._clock.monotonic() < self._degraded_until:
                    return fallback
                try:
                    return action()
                except StorageError as exc:
                    self._storage_failed(exc)
                    return fallback
        finally:
            if self._pending:
                self._flush()

    # -- inspection and control ------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The state the next call meets: open turns half-open once ``reset_timeout`` is over."""

        def read() -> State:
            state, opened_at, _ = self._storage.load()
            if state == OPEN and self._remaining(opened_at) <= 0.0:
                return "half-open"
            return cast(State, state)

        return self._locked(read, cast(State, self._fallback_state))

    def retry_after(self) -> float:
        """Seconds until the circuit admits a call (0.0 if it would admit one now)."""

        def read() -> float:
            state, opened_at, _ = self._storage.load()
            if state == OPEN:
                remaining = self._remaining(opened_at)
                if remaining > 0.0:
                    return remaining
                return 0.0
            if state == HALF_OPEN and self._probes >= self._half_open_max:
                return self._busy_retry_after
            return 0.0

        fallback = (
            max(0.0, self._degraded_until - self._clock.monotonic())
            if self._fallback_state == OPEN
            else 0.0
        )
        return self._locked(read, fallback)

    def open(self) -> None:
        """Force the circuit open (for ``reset_timeout``), e.g. from an operator switch."""

        def force() -> None:
            self._reason = "forced open"
            self._machine.open()

        self._locked(force, None)

    def close(self) -> None:
        """Force the circuit closed, with zeroed counters and an empty window."""

        def force() -> None:
            self._reason = "reset"
            self._machine.close()  # pybreaker notifies even closed -> closed: a new epoch
            self._seen_fails = 0

        with self._lock:
            self._degraded_until = 0.0
        self._locked(force, None)

    reset = close

    def stats(self) -> BreakerStats:
        """A consistent snapshot of this circuit (one storage read)."""

        def read() -> BreakerStats:
            storage = self._storage
            state, opened_at, fails = storage.load()
            successes = storage.success_counter if state == HALF_OPEN else 0
            return self._stats(state, opened_at, fails, successes, True)

        with self._lock:
            fallback = self._stats(self._fallback_state, None, 0, 0, False)
        return self._locked(read, fallback)

    def _stats(
        self, state: str, opened_at: float | None, fails: int, successes: int, ok: bool
    ) -> BreakerStats:
        window = self._window
        calls = len(window.outcomes) if window is not None else 0
        failures = window.failures if window is not None else 0
        slow = window.slow if window is not None else 0
        retry_after = 0.0
        if not ok:
            if state == OPEN:
                retry_after = max(0.0, self._degraded_until - self._clock.monotonic())
        elif state == OPEN:
            retry_after = max(0.0, self._remaining(opened_at))
            if retry_after == 0.0:
                state = HALF_OPEN
        return BreakerStats(
            name=self.name,
            state=cast(State, state),
            consecutive_failures=fails,
            half_open_successes=successes,
            opened_at=opened_at,
            retry_after=retry_after,
            window_calls=calls,
            window_failures=failures,
            window_slow_calls=slow,
            failure_rate=100.0 * failures / calls if calls else None,
            slow_call_rate=100.0 * slow / calls if calls else None,
            probes_in_flight=self._probes if state == HALF_OPEN else 0,
            storage=type(self._storage).__name__,
            storage_ok=ok,
        )

    def __repr__(self) -> str:
        return f"Circuit({self.name!r}, fail_max={self._fail_max}, storage={self._storage!r})"


def _describe(exc: BaseException) -> str:
    return type(exc).__name__


def _validate(name: str, c: CircuitConfig) -> None:
    problems: list[str] = []
    if not isinstance(name, str) or not name:
        problems.append("name must be a non-empty string")
    if c.fail_max is not None and (not isinstance(c.fail_max, int) or c.fail_max < 1):
        problems.append(f"fail_max must be an int >= 1 or None, got {c.fail_max!r}")
    if (
        c.fail_max is None
        and c.failure_rate_threshold is None
        and c.slow_call_rate_threshold is None
    ):
        problems.append("fail_max=None needs failure_rate_threshold or slow_call_rate_threshold")
    if not isinstance(c.reset_timeout, int | float) or c.reset_timeout <= 0:
        problems.append(f"reset_timeout must be > 0 seconds, got {c.reset_timeout!r}")
    for label, value in (
        ("success_threshold", c.success_threshold),
        ("window_size", c.window_size),
        ("minimum_calls", c.minimum_calls),
        ("half_open_max_calls", c.half_open_max_calls),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"{label} must be an int >= 1, got {value!r}")
    for label, rate in (
        ("failure_rate_threshold", c.failure_rate_threshold),
        ("slow_call_rate_threshold", c.slow_call_rate_threshold),
    ):
        if rate is not None and (not isinstance(rate, int | float) or not 0 < rate <= 100):
            problems.append(f"{label} is a percentage in (0, 100], got {rate!r}")
    if (c.slow_call_rate_threshold is None) != (c.slow_call_duration is None):
        problems.append("slow_call_rate_threshold and slow_call_duration go together")
    if c.slow_call_duration is not None and (
        not isinstance(c.slow_call_duration, int | float) or c.slow_call_duration <= 0
    ):
        problems.append(f"slow_call_duration must be > 0 seconds, got {c.slow_call_duration!r}")
    if c.fallback_state not in STATES:
        problems.append(f"fallback_state must be one of {sorted(STATES)}, got {c.fallback_state!r}")
    if not isinstance(c.storage_retry_interval, int | float) or c.storage_retry_interval <= 0:
        problems.append(f"storage_retry_interval must be > 0, got {c.storage_retry_interval!r}")
    storage: object = c.storage  # checked at run time: callers may not be type-checked
    if storage is not None and not isinstance(storage, BreakerStorage):
        problems.append(
            f"storage must be a MemoryStorage or RedisStorage, got {type(storage).__name__}"
        )
    rules: tuple[object, ...] = c.exclude
    for rule in rules:
        if isinstance(rule, type):
            if not issubclass(rule, BaseException):
                problems.append(f"exclude: {rule.__name__} is not an exception type")
        elif not callable(rule):
            problems.append(f"exclude: {rule!r} is neither an exception type nor a predicate")
    if problems:
        raise ConfigError(f"circuit {name!r}: " + "; ".join(problems))


# -- the registry: one circuit per dependency, reused across requests ----------------------------
_registry: dict[str, Circuit] = {}
_registry_lock = threading.Lock()
_CONFIG_FIELDS = frozenset(f.name for f in fields(CircuitConfig))


def breaker(name: str, **config: Any) -> Circuit:
    """The circuit named ``name``, created with ``config`` on first use.

    Later calls may repeat the configuration (or give none); a different value for an existing
    name raises :class:`~shared.resilience.errors.ConfigError` naming the differences.
    """
    unknown = sorted(set(config) - _CONFIG_FIELDS)
    if unknown:
        raise ConfigError(
            f"breaker {name!r}: unknown option(s) {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(_CONFIG_FIELDS))}"
        )
    with _registry_lock:
        existing = _registry.get(name)
        if existing is None:
            created = Circuit(name=name, **config)
            _registry[name] = created
            return created
    current = existing.config
    diffs = []
    for key, value in config.items():
        have = getattr(current, key)
        if key == "exclude":
            value = tuple(value)
        if have != value:
            diffs.append(f"{key}={value!r} (existing: {have!r})")
    if diffs:
        raise ConfigError(
            f"breaker {name!r} already exists with another configuration: " + "; ".join(diffs)
        )
    return existing


def breakers() -> dict[str, Circuit]:
    """Every registered circuit by name (a copy)."""
    with _registry_lock:
        return dict(sorted(_registry.items()))


def reset_breakers() -> None:
    """Forget every registered circuit (for tests)."""
    with _registry_lock:
        _registry.clear()
