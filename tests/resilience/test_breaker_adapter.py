"""The pybreaker internals that ``shared/resilience/circuit/adapter.py`` relies on, and the
adapter itself. A pybreaker upgrade that changes any of them fails here, by name, before the
circuit's behaviour tests fail in harder-to-read ways."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pybreaker
import pytest

import shared.resilience.circuit as circuit_package
from shared.resilience.circuit.adapter import Machine
from shared.resilience.circuit.config import CircuitConfig
from shared.resilience.circuit.states import ClosedState, HalfOpenState, OpenState
from shared.resilience.circuit.storage import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    MemoryStorage,
    RedisStorage,
)


class Transitions(pybreaker.CircuitBreakerListener):
    """Records every ``state_change`` as (old name, new state object)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str | None, pybreaker.CircuitBreakerState]] = []

    def state_change(
        self,
        cb: pybreaker.CircuitBreaker,
        old_state: pybreaker.CircuitBreakerState | None,
        new_state: pybreaker.CircuitBreakerState,
    ) -> None:
        self.seen.append((old_state.name if old_state is not None else None, new_state))


class Recording(pybreaker.CircuitBreaker):
    """A plain pybreaker breaker that records how it builds state objects."""

    def __init__(self, **kwargs: Any) -> None:
        self.built: list[tuple[str, pybreaker.CircuitBreakerState | None, bool, object]] = []
        super().__init__(**kwargs)

    def _create_new_state(
        self,
        new_state: str,
        prev_state: pybreaker.CircuitBreakerState | None = None,
        notify: bool = False,
    ) -> Any:
        made = super()._create_new_state(new_state, prev_state=prev_state, notify=notify)
        self.built.append((new_state, prev_state, notify, made))
        return made


def stored(fails: int = 0, successes: int = 0, state: str = CLOSED) -> MemoryStorage:
    storage = MemoryStorage("adapter")
    storage.state = state
    for _ in range(fails):
        storage.increment_counter()
    for _ in range(successes):
        storage.increment_success_counter()
    return storage


# -- pybreaker 1.4.1's internals, as the adapter uses them -----------------------------------------


def test_the_state_names_are_pybreakers() -> None:
    assert (CLOSED, OPEN, HALF_OPEN) == (
        pybreaker.STATE_CLOSED,
        pybreaker.STATE_OPEN,
        pybreaker.STATE_HALF_OPEN,
    )


def test_the_breaker_keeps_its_storage_as_state_storage() -> None:
    storage = stored()
    cb = pybreaker.CircuitBreaker(state_storage=storage)
    assert cb._state_storage is storage
    replacement = stored(fails=2)
    cb._state_storage = replacement  # what the adapter does after construction
    assert cb.fail_counter == 2  # pybreaker's own reads now go to the replacement


def test_the_constructor_builds_its_state_from_the_storage_through_create_new_state() -> None:
    cb = Recording(state_storage=stored(state=OPEN))
    ((name, prev, notify, made),) = cb.built
    assert (name, prev, notify) == (OPEN, None, False)
    assert cb._state is made
    assert isinstance(made, pybreaker.CircuitOpenState)


def test_the_state_setter_builds_the_new_state_through_create_new_state_and_notifies() -> None:
    listener = Transitions()
    cb = Recording(state_storage=stored(), listeners=[listener])
    before = cb._state
    cb.state = OPEN  # type: ignore[assignment]  # the setter takes a state's name
    name, prev, notify, made = cb.built[-1]
    assert (name, prev, notify) == (OPEN, before, True)
    assert cb._state is made
    assert listener.seen == [(CLOSED, made)]


def test_create_new_state_signature() -> None:
    params = list(inspect.signature(pybreaker.CircuitBreaker._create_new_state).parameters)
    assert params == ["self", "new_state", "prev_state", "notify"]
    for cls in (
        pybreaker.CircuitClosedState,
        pybreaker.CircuitOpenState,
        pybreaker.CircuitHalfOpenState,
    ):
        assert list(inspect.signature(cls.__init__).parameters) == [
            "self",
            "cb",
            "prev_state",
            "notify",
        ], cls


@pytest.mark.parametrize(
    ("cls", "reset"),
    [
        (pybreaker.CircuitClosedState, "fails"),
        (pybreaker.CircuitOpenState, "successes"),
        (pybreaker.CircuitHalfOpenState, "successes"),
    ],
)
def test_a_state_built_quietly_neither_notifies_nor_resets_the_shared_counters(
    cls: type[pybreaker.CircuitBreakerState], reset: str
) -> None:
    listener = Transitions()
    storage = stored(fails=3, successes=2)
    cb = pybreaker.CircuitBreaker(state_storage=storage, listeners=[listener])
    listener.seen.clear()
    cls(cb, None, notify=False)  # type: ignore[call-arg]  # each state's own signature
    assert (storage.counter, storage.success_counter) == (3, 2)
    assert listener.seen == []
    # Built with notify (the public setter's way), the same state resets a counter: that is
    # why the adapter adopts another instance's state quietly.
    cls(cb, cb._state, notify=True)  # type: ignore[call-arg]
    assert (storage.counter, storage.success_counter) == ((0, 2) if reset == "fails" else (3, 0))
    assert len(listener.seen) == 1


def test_half_open_on_success_counts_and_closes_at_the_threshold() -> None:
    storage = stored(state=HALF_OPEN)
    cb = pybreaker.CircuitBreaker(state_storage=storage, success_threshold=2)
    state = cb._state
    assert isinstance(state, pybreaker.CircuitHalfOpenState)
    state.on_success()
    assert (storage.success_counter, storage.state) == (1, HALF_OPEN)
    state.on_success()
    assert storage.state == CLOSED
    assert isinstance(cb._state, pybreaker.CircuitClosedState)


# -- the adapter ---------------------------------------------------------------------------------


class Exploding(MemoryStorage):
    def __getattribute__(self, name: str) -> Any:
        if name in {"state", "counter", "success_counter", "load", "opened_at"}:
            raise AssertionError(f"storage read at construction: {name}")
        return super().__getattribute__(name)


def machine(storage: Any, listener: Transitions | None = None, **config: Any) -> Machine:
    now = iter(range(100, 10_000)).__next__
    return Machine(
        "adapter", storage, CircuitConfig(**config), lambda: float(now()), listener or Transitions()
    )


def test_the_machine_holds_our_states_and_the_real_storage_without_reading_it() -> None:
    storage = Exploding("adapter")
    m = machine(storage)
    assert m.storage is storage
    assert isinstance(m.current, ClosedState)
    assert m.name == "adapter"


def test_adopt_takes_a_stored_state_quietly() -> None:
    listener = Transitions()
    storage = stored(fails=3, successes=1)
    m = machine(storage, listener)
    first = m.current
    assert m.adopt(OPEN) == CLOSED
    assert isinstance(m.current, OpenState)
    assert m.adopt(HALF_OPEN) == OPEN
    assert isinstance(m.current, HalfOpenState)
    assert m.current is not first
    assert listener.seen == []
    assert (storage.counter, storage.success_counter) == (3, 1)


def test_trip_writes_state_and_instant_together_and_reports_the_reason() -> None:
    listener = Transitions()
    storage = stored(fails=4)
    m = machine(storage, listener)
    m.trip("because")
    assert storage.load() == (OPEN, 100.0, 4)
    assert isinstance(m.current, OpenState)
    ((old, new),) = listener.seen
    assert (old, new) == (CLOSED, m.current)
    assert m.reason == "because"


def test_move_enters_a_state_through_pybreakers_setter() -> None:
    listener = Transitions()
    m = machine(stored(state=OPEN, successes=2), listener)
    m.adopt(OPEN)
    m.move(HALF_OPEN, "timeout")
    assert isinstance(m.current, HalfOpenState)
    assert m.storage.success_counter == 0  # pybreaker's half-open entry reset it
    assert [old for old, _ in listener.seen] == [OPEN]
    assert m.reason == "timeout"


def test_an_unknown_state_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="ajar"):
        machine(stored()).adopt("ajar")


# pybreaker's private names, and any private attribute reached through a breaker object.
PYBREAKER_INTERNALS = re.compile(
    r"_state_storage|_create_new_state|_handle_error|_handle_success|_excluded_exceptions"
    r"|\._breaker\b|(machine|cb|breaker)\._\w"
)


def test_only_the_adapter_touches_pybreaker_internals() -> None:
    package = Path(circuit_package.__file__).parent
    users = {
        path.name
        for path in package.glob("*.py")
        for line in path.read_text().splitlines()
        if not line.lstrip().startswith("#") and PYBREAKER_INTERNALS.search(line)
    }
    assert users == {"adapter.py"}


def test_redis_storage_is_a_pybreaker_storage() -> None:
    assert issubclass(RedisStorage, pybreaker.CircuitBreakerStorage)
    assert issubclass(MemoryStorage, pybreaker.CircuitBreakerStorage)
