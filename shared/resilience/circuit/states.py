"""The circuit's states: pybreaker's state classes, each deciding admission and outcomes.

pybreaker's state pattern, extended with the two hooks the circuit needs because it never runs
the guarded call inside pybreaker (pybreaker#55): :meth:`CircuitState.admit` before the call,
:meth:`CircuitState.settle` after it. Transitions go through pybreaker (``open``, ``close``, the
``state`` setter) and reach the circuit through its listener; the half-open state counts probe
successes with pybreaker's own ``on_success``.

A state object lives for one period of its state, so it also holds that period's bookkeeping:
the closed state's sliding window, the half-open state's probes in flight. A :class:`Ticket`
names the state object that admitted a call; once that object is no longer current, the call's
outcome belongs to the past and is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple, Protocol, cast

import pybreaker

from shared.resilience.circuit.storage import HALF_OPEN, BreakerStorage, Snapshot
from shared.resilience.circuit.window import SlidingWindow

if TYPE_CHECKING:
    from shared.resilience.circuit.config import CircuitConfig

__all__ = [
    "CircuitState",
    "ClosedState",
    "HalfOpenState",
    "OpenState",
    "Refused",
    "StateMachine",
    "Ticket",
]


class Ticket(NamedTuple):
    """How a call was admitted."""

    #: The state object that admitted it; None when admitted by the fallback state while the
    #: storage fails (such outcomes are not recorded).
    admitted_by: CircuitState | None
    #: A half-open probe, holding one of the probe slots until its outcome is settled.
    probe: bool = False
    #: When it was admitted (monotonic seconds), if the circuit times calls; else 0.0.
    started: float = 0.0


class Refused(Exception):
    """Admission refused; the circuit turns this into a CircuitOpenError and an event."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class StateMachine(Protocol):
    """What the states use of the pybreaker breaker holding them (see ``adapter.Machine``)."""

    config: CircuitConfig
    #: The current instant on the clock this circuit shares with other instances.
    now: Callable[[], float]
    #: Why the next transition happens (the listener reports it).
    reason: str

    @property
    def storage(self) -> BreakerStorage: ...

    @property
    def current(self) -> CircuitState: ...

    def trip(self, reason: str) -> None: ...

    def move(self, state: str, reason: str) -> None: ...


def time_left(config: CircuitConfig, now: float, opened_at: float | None) -> float:
    """Seconds until an open period that began at ``opened_at`` ends (<= 0: over)."""
    if opened_at is None:
        return 0.0
    return opened_at + config.reset_timeout - now


class CircuitState(pybreaker.CircuitBreakerState):
    """What every state adds to pybreaker's: admission, settlement, the period's bookkeeping."""

    machine: StateMachine
    #: The ticket every call gets in this state without asking (closed only; else None).
    ticket: Ticket | None = None
    #: The sliding window of this period (closed, with a rate rule; else None).
    window: SlidingWindow | None = None
    #: Half-open probes running (this instance).
    probes: int = 0

    def __init__(
        self,
        cb: pybreaker.CircuitBreaker,
        prev_state: pybreaker.CircuitBreakerState | None = None,
        notify: bool = False,
    ) -> None:
        self.machine = _machine(cb)
        self.set_up()
        # Next in the MRO is pybreaker's closed/open/half-open state (not the base class, whose
        # signature mypy sees); it notifies the listener, so the set-up above comes first.
        super().__init__(cb, prev_state, notify)  # type: ignore[call-arg, arg-type]

    def set_up(self) -> None:
        """This period's bookkeeping, made before pybreaker announces the state."""

    def admit(self, snapshot: Snapshot) -> Ticket | None:
        """A ticket, or None to read the storage again; raises :class:`Refused`."""
        raise NotImplementedError

    def settle(self, failed: bool, exc: BaseException | None, slow: bool) -> None:
        """Record the outcome of a call this state admitted (storage errors propagate)."""

    def release_probe(self) -> None:
        """Free the probe slot of a probe this state admitted."""
        self.probes -= 1


class ClosedState(CircuitState, pybreaker.CircuitClosedState):
    """Admits every call; opens on ``fail_max`` consecutive failures or a rate threshold."""

    def set_up(self) -> None:
        self.ticket = Ticket(self)
        config = self.machine.config
        self.window = SlidingWindow(config.window_size) if config.counts_rates else None

    def admit(self, snapshot: Snapshot) -> Ticket | None:
        return self.ticket

    def settle(self, failed: bool, exc: BaseException | None, slow: bool) -> None:
        machine = self.machine
        config = machine.config
        storage = machine.storage
        window = self.window
        if window is not None:
            window.add(failed, slow)
        reason = None
        if failed:
            storage.increment_counter()
            if config.fail_max is not None and storage.seen_failures >= config.fail_max:
                reason = f"{config.fail_max} consecutive failures (last: {_describe(exc)})"
        elif storage.seen_failures:  # a success only needs writing after a failure
            storage.reset_counter()
        if reason is None and window is not None:
            reason = window.verdict(
                config.minimum_calls, config.failure_rate_threshold, config.slow_call_rate_threshold
            )
        if reason is not None:
            machine.trip(reason)


class OpenState(CircuitState, pybreaker.CircuitOpenState):
    """Refuses calls until ``reset_timeout`` is over; then the first caller moves it half-open."""

    def admit(self, snapshot: Snapshot) -> Ticket | None:
        machine = self.machine
        _, opened_at, _ = snapshot
        remaining = time_left(machine.config, machine.now(), opened_at)
        if remaining > 0.0:
            raise Refused(remaining)
        # Compare-and-set: only one instance ends this open period; a loser reads again.
        if not machine.storage.try_half_open(opened_at):
            return None
        machine.move(HALF_OPEN, f"reset timeout of {machine.config.reset_timeout:g} s elapsed")
        return machine.current.admit(snapshot)


class HalfOpenState(CircuitState, pybreaker.CircuitHalfOpenState):
    """Admits ``half_open_max_calls`` probes at once; they close or re-open the circuit."""

    def admit(self, snapshot: Snapshot) -> Ticket | None:
        config = self.machine.config
        if self.probes >= config.half_open_max_calls:
            raise Refused(config.busy_retry_after)
        self.probes += 1
        return Ticket(self, probe=True)

    def settle(self, failed: bool, exc: BaseException | None, slow: bool) -> None:
        machine = self.machine
        if failed:
            machine.storage.increment_counter()  # as pybreaker counts it, before re-opening
            machine.trip(f"probe failed ({_describe(exc)})")
        elif slow:
            machine.trip(f"probe slower than {machine.config.slow_call_duration:g} s")
        else:
            machine.storage.reset_counter()
            # pybreaker counts the success and closes at ``success_threshold``; the listener
            # reports that transition with this reason.
            machine.reason = "probe succeeded"
            self.on_success()


def _machine(cb: pybreaker.CircuitBreaker) -> StateMachine:
    return cast("StateMachine", cb)  # the adapter's Machine, which pybreaker passes to its states


def _describe(exc: BaseException | None) -> str:
    return type(exc).__name__
