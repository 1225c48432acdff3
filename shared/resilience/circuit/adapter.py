"""The one place that reaches beneath pybreaker's public surface.

pybreaker 1.4.1 runs the guarded call inside ``CircuitBreaker.call`` with its lock held
(pybreaker#55: 8 threads x 100 ms take 0.8 s). The circuit therefore never calls ``call``: it asks
the current state object to admit a call, runs the call unlocked, then asks that state to settle
the outcome. For that it needs three things pybreaker keeps private; each is used here only, and
``tests/resilience/test_breaker_adapter.py`` fails if pybreaker changes any of them:

* ``_state_storage``: pybreaker's constructor reads the storage; the real one (maybe Redis) is
  installed after construction, so building a circuit sends nothing anywhere;
* ``_state``: the state object this instance holds, read without the storage round trip (and
  without the listener call and counter resets) of the public ``state`` property;
* ``_create_new_state``: overridden, so pybreaker builds our state classes; called directly to
  adopt a state another instance stored, without pybreaker's resets of the shared counters.

Nothing else: transitions use the public ``open``, ``close`` and ``state`` setter, and reach the
circuit through a listener; the storages implement pybreaker's storage interface.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import pybreaker

from shared.resilience.circuit.config import CircuitConfig
from shared.resilience.circuit.states import (
    CircuitState,
    ClosedState,
    HalfOpenState,
    OpenState,
    StateMachine,
)
from shared.resilience.circuit.storage import CLOSED, HALF_OPEN, OPEN, BreakerStorage, MemoryStorage

__all__ = ["Machine"]

_STATE_CLASSES: dict[str, type[ClosedState | OpenState | HalfOpenState]] = {
    CLOSED: ClosedState,
    OPEN: OpenState,
    HALF_OPEN: HalfOpenState,
}


class Machine(pybreaker.CircuitBreaker):
    """pybreaker's breaker holding our states; driven by the circuit under the circuit's lock."""

    def __init__(
        self,
        name: str,
        storage: BreakerStorage,
        config: CircuitConfig,
        now: Callable[[], float],
        listener: pybreaker.CircuitBreakerListener,
    ) -> None:
        self.config = config
        self.now = now
        self.reason = ""
        super().__init__(
            fail_max=config.fail_max if config.fail_max is not None else sys.maxsize,
            reset_timeout=config.reset_timeout,
            success_threshold=config.success_threshold,
            listeners=[listener],
            state_storage=MemoryStorage(name),  # read by the constructor: never the real one
            name=name,
            throw_new_error_on_trip=False,
        )
        self._state_storage = storage

    @property
    def storage(self) -> BreakerStorage:
        """The storage this breaker's states read and write."""
        return cast(BreakerStorage, self._state_storage)

    @property
    def current(self) -> CircuitState:
        """This instance's state object (another instance may have moved the stored state)."""
        return cast(CircuitState, self._state)

    def _create_new_state(
        self,
        new_state: str,
        prev_state: pybreaker.CircuitBreakerState | None = None,
        notify: bool = False,
    ) -> ClosedState | OpenState | HalfOpenState:
        cls = _STATE_CLASSES.get(new_state)
        if cls is None:
            raise ValueError(
                f"unknown breaker state {new_state!r}; valid: {sorted(_STATE_CLASSES)}"
            )
        return cls(self, prev_state=prev_state, notify=notify)

    def adopt(self, state: str) -> str:
        """Take the state another instance stored, quietly; returns the previous state's name."""
        old = self._state
        self._state = self._create_new_state(state, prev_state=old, notify=False)
        return old.name

    def open(self) -> bool:
        # pybreaker stamps datetime.now() and writes the instant and the state separately; we
        # stamp the circuit's clock and write both at once (pybreaker#24).
        self.storage.trip(self.now())
        self.state = OPEN  # the setter takes a state's name
        return False

    def trip(self, reason: str) -> None:
        """Open the circuit now, for ``reason``."""
        self.reason = reason
        self.open()

    def move(self, state: str, reason: str) -> None:
        """Enter ``state`` (already written to the storage) for ``reason``; listeners hear it."""
        self.reason = reason
        self.state = state


if TYPE_CHECKING:
    # The states reach their breaker as a StateMachine: mypy checks that Machine is one.
    _CONFORMS: type[StateMachine] = Machine
