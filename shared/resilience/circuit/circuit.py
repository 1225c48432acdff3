"""The circuit: pybreaker's state machine, without pybreaker's lock around the guarded call.

``Circuit(fail_max=4, reset_timeout=8.0)`` behaves as the seed's ``new Circuit(4, 8000)``: after
4 consecutive failures it opens for 8 s and refuses calls with
:class:`~shared.resilience.errors.CircuitOpenError`; then it lets one probe through (half-open);
the probe's success closes it, its failure opens it for another 8 s.

The lock is held only to admit a call and to record its outcome, never across the call
(pybreaker#55); see :mod:`.states` for what each state does and :mod:`.adapter` for how pybreaker
holds them. Outcomes of calls admitted before a transition are ignored (a slow failure that lands
after the circuit opened neither extends the open period nor re-opens a probing circuit).

Circuits sharing a storage (one RedisStorage key across processes, or one MemoryStorage object in
a process) act as one breaker: each adopts the stored state before admitting a call and before
recording its outcome; the state, opened-at instant (wall time, so every instance reaches
half-open together, pybreaker#24) and consecutive-failure count are shared, the sliding window
and the half-open probe limit are per instance. When the storage fails the circuit acts as
``fallback_state`` for ``storage_retry_interval`` seconds, reports
:class:`~shared.resilience.events.BreakerStorageFailed` once per such period, and never lets a
storage error reach the caller. Events: :class:`~shared.resilience.events.BreakerStateChanged`
on every transition (also one made by another instance, when first seen here),
:class:`~shared.resilience.events.BreakerRejected` on every refusal; successes emit nothing.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

import pybreaker

from shared.resilience import events
from shared.resilience.circuit.adapter import Machine
from shared.resilience.circuit.config import build_config
from shared.resilience.circuit.exclusion import Exclusion
from shared.resilience.circuit.outage import Outage
from shared.resilience.circuit.states import CircuitState, Refused, Ticket, time_left
from shared.resilience.circuit.stats import BreakerStats
from shared.resilience.circuit.storage import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    MemoryStorage,
    Snapshot,
    State,
)
from shared.resilience.clock import SYSTEM_CLOCK
from shared.resilience.errors import CircuitOpenError, StorageError

__all__ = ["BreakerStats", "Circuit"]

P = ParamSpec("P")
T = TypeVar("T")


class Circuit:
    """A circuit breaker for one dependency. See the module docstring.

    Arguments are those of :class:`~shared.resilience.circuit.config.CircuitConfig`, plus a
    ``name``. ``call(fn, *args, **kwargs)`` runs ``fn`` if the circuit admits it, else raises
    :class:`~shared.resilience.errors.CircuitOpenError` without running it; a circuit is also a
    decorator. A refusal's ``retry_after`` is the rest of the open period, or
    ``min(1, reset_timeout)`` while every half-open probe slot is taken.

    Guards synchronous functions: a coroutine or generator function would only be created
    inside the breaker, and its outcome never seen.
    """

    def __init__(self, *args: Any, name: str = "default", **options: Any) -> None:
        self.config = config = build_config(name, *args, **options)
        self.name = name
        self._clock = clock = config.clock or SYSTEM_CLOCK
        storage = config.storage if config.storage is not None else MemoryStorage(name)
        self._storage = storage
        self._shared = storage.shared
        # A memory-backed, count-only circuit admits a call while closed, and skips a success
        # that follows no failure, without taking the lock.
        self._lock_free = not storage.shared and not config.counts_rates
        self._slow_after = config.slow_call_duration or math.inf
        self._timed = config.slow_call_duration is not None
        self._lock = threading.Lock()
        self._emit_lock = threading.RLock()
        self._pending: list[events.Event] = []
        self._exclusion = Exclusion(name, config.exclude, config.exclude_business_errors)
        self._outage = Outage(config, clock)
        self._ticket: Ticket | None = None  # the closed state's ticket, kept by _on_change
        # Instants compared across processes are wall time; local ones monotonic.
        now = clock.time if storage.shared else clock.monotonic
        self._machine = Machine(name, storage, config, now, _Listener(self))
        self._ticket = self._machine.current.ticket

    # -- calling -------------------------------------------------------------------------------
    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker; its exceptions pass through."""
        ticket = self._admit()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._settle(ticket, exc)
            raise
        self._settle(ticket, None)
        return result

    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]:
        """Use the circuit as a decorator."""

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> T:
            return self.call(fn, *args, **kwargs)

        return guarded

    def _admit(self) -> Ticket:
        ticket = self._ticket  # read before the state: a transition in between voids it
        if ticket is not None and self._lock_free and self._storage.state == CLOSED:
            return ticket
        try:
            with self._lock:
                try:
                    ticket = self._admit_locked()
                except Refused as refusal:
                    self._pending.append(events.BreakerRejected(self.name, refusal.retry_after))
                    raise CircuitOpenError(self.name, refusal.retry_after) from None
        finally:
            if self._pending:
                self._flush()
        return ticket._replace(started=self._clock.monotonic()) if self._timed else ticket

    def _admit_locked(self) -> Ticket:
        if self._outage.active():
            return self._outage.admit()
        try:
            for _ in range(3):
                snapshot = self._reconcile()
                ticket = self._machine.current.admit(snapshot)
                if ticket is not None:
                    return ticket
                # Another instance ended the open period first: read again.
        except StorageError as exc:
            self._storage_failed(exc)
            return self._outage.admit()
        raise Refused(self.config.busy_retry_after)

    def _settle(self, ticket: Ticket, exc: BaseException | None) -> None:
        lock_free_success = exc is None and self._lock_free and not ticket.probe
        if lock_free_success and not self._storage.seen_failures:
            return  # nothing to reset, no window to fill
        slow = self._timed and self._clock.monotonic() - ticket.started > self._slow_after
        try:
            with self._lock:
                self._record(ticket, exc, slow)
        finally:
            if self._pending:
                self._flush()

    def _record(self, ticket: Ticket, exc: BaseException | None, slow: bool) -> None:
        state = ticket.admitted_by
        if state is None:  # admitted by the fallback while the storage failed
            self._outage.release(ticket)
            return
        if ticket.probe:
            state.release_probe()
        failed = exc is not None and self._exclusion.is_failure(exc)
        try:
            ready = self._read_before_recording(must_write=failed or ticket.probe)
            if ready and state is self._machine.current:  # else admitted before a transition
                state.settle(failed, exc, slow)
        except StorageError as error:
            self._storage_failed(error)

    def _read_before_recording(self, must_write: bool) -> bool:
        """Adopt the stored state before recording; False when there is nothing to record."""
        if not self._shared:
            # Another circuit on this memory storage may have moved it during the call: adopt
            # its state (a new state object, so this outcome is then ignored, as on Redis).
            self._reconcile()
            return True
        if self._outage.active():
            return False  # the storage is failing: nowhere to record
        if must_write or self._storage.seen_failures:
            self._reconcile()
            return True
        return self.config.counts_rates  # nothing to write; only the local window may care

    # -- transitions -----------------------------------------------------------------------------
    def _reconcile(self) -> Snapshot:
        """Read the stored state; adopt it here if another circuit moved it."""
        snapshot = self._storage.load()
        stored = snapshot[0]
        if stored != self._machine.current.name:
            old = self._machine.adopt(stored)
            self._on_change(old, self._machine.current, "changed by another instance")
        return snapshot

    def _on_change(self, old: str, new: CircuitState, reason: str) -> None:
        """Called under the lock for every new state object of this instance."""
        self._ticket = new.ticket
        if old != new.name:
            self._pending.append(events.BreakerStateChanged(self.name, old, new.name, reason))

    def _storage_failed(self, exc: StorageError) -> None:
        self._outage.begin()
        failed = events.BreakerStorageFailed(self.name, str(exc), self.config.fallback_state)
        self._pending.append(failed)

    def _flush(self) -> None:
        # Hooks run outside the state lock (a hook may read the circuit); the emit lock keeps
        # events in the order the transitions happened when several threads flush at once.
        with self._emit_lock:
            with self._lock:
                pending, self._pending = self._pending, []
            for event in pending:
                events.emit(event)

    def _locked(self, action: Callable[[], T], fallback: Callable[[], T]) -> T:
        """Run ``action`` under the lock; during a storage outage, ``fallback`` instead."""
        try:
            with self._lock:
                if self._outage.active():
                    return fallback()
                try:
                    return action()
                except StorageError as exc:
                    self._storage_failed(exc)
                    return fallback()
        finally:
            if self._pending:
                self._flush()

    # -- inspection and control ------------------------------------------------------------------
    @property
    def state(self) -> State:
        """The state the next call meets: open turns half-open once ``reset_timeout`` is over."""
        return self._locked(
            lambda: self._meets(self._storage.load())[0], lambda: self.config.fallback_state
        )

    def retry_after(self) -> float:
        """Seconds until the circuit admits a call (0.0 if it would admit one now)."""
        return self._locked(lambda: self._meets(self._storage.load())[1], self._outage.retry_after)

    def stats(self) -> BreakerStats:
        """A consistent snapshot of this circuit (one storage read)."""
        return self._locked(self._stats, lambda: self._stats(ok=False))

    def open(self) -> None:
        """Force the circuit open (for ``reset_timeout``), e.g. from an operator switch."""
        self._locked(lambda: self._machine.trip("forced open"), lambda: None)

    def close(self) -> None:
        """Force the circuit closed, with zeroed counters and an empty window."""

        def force() -> None:
            self._machine.reason = "reset"
            self._machine.close()  # pybreaker notifies even closed -> closed: a new period

        with self._lock:
            self._outage.end()
        self._locked(force, lambda: None)

    reset = close

    def _meets(self, snapshot: Snapshot) -> tuple[State, float]:
        """The state a call meets now, and the seconds until one is admitted, from one read."""
        state, opened_at, _ = snapshot
        wait = 0.0
        if state == OPEN:
            wait = max(0.0, time_left(self.config, self._machine.now(), opened_at))
            if wait == 0.0:
                state = HALF_OPEN
        elif state == HALF_OPEN and self._machine.current.probes >= self.config.half_open_max_calls:
            wait = self.config.busy_retry_after
        return cast(State, state), wait  # one of STATES: the storage checks what it reads

    def _stats(self, ok: bool = True) -> BreakerStats:
        """The stats from one storage read (``ok=False``: the fallback state's, without one)."""
        current, storage = self._machine.current, self._storage
        if not ok:
            fallback = self.config.fallback_state
            retry_after = self._outage.retry_after()
            return BreakerStats.of(
                self.name, fallback, retry_after, (fallback, None, 0), 0, current, storage, ok
            )
        snapshot = storage.load()
        state, retry_after = self._meets(snapshot)
        successes = storage.success_counter if snapshot[0] == HALF_OPEN else 0
        return BreakerStats.of(
            self.name, state, retry_after, snapshot, successes, current, storage, ok
        )

    def __repr__(self) -> str:
        return f"Circuit({self.name!r}, fail_max={self.config.fail_max}, storage={self._storage!r})"


class _Listener(pybreaker.CircuitBreakerListener):
    """Reports the transitions pybreaker makes to the circuit that owns the breaker."""

    def __init__(self, circuit: Circuit) -> None:
        self._circuit = circuit

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        assert isinstance(new_state, CircuitState)
        assert isinstance(cb, Machine)
        old = old_state.name if old_state is not None else new_state.name
        self._circuit._on_change(old, new_state, cb.reason)
