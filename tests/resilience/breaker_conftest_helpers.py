"""Helpers shared by the circuit breaker tests (plain functions; fixtures live in the tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from shared.resilience import events
from shared.resilience.circuit import BreakerStorage, Circuit, MemoryStorage, RedisStorage
from shared.resilience.transient import HttpStatusError

#: Builds a fresh storage for a breaker name (memory, or Redis on the test's server).
StorageFactory = Callable[[str], BreakerStorage]


class Boom(ConnectionError):
    """A transient failure that counts against the breaker."""


def ok(value: Any = "ok") -> Callable[[], Any]:
    return lambda: value


def fail(exc: BaseException | None = None) -> Callable[[], Any]:
    def raise_it() -> Any:
        raise exc if exc is not None else Boom("down")

    return raise_it


def bad_request() -> Any:
    raise HttpStatusError(400, "bad request")


def outcome(circuit: Circuit, fn: Callable[[], Any]) -> str:
    """Run ``fn`` through ``circuit``: "ok", "rejected" or the exception's class name."""
    from shared.resilience.errors import CircuitOpenError

    try:
        circuit.call(fn)
    except CircuitOpenError:
        return "rejected"
    except BaseException as exc:
        return type(exc).__name__
    return "ok"


def trip(circuit: Circuit, failures: int) -> None:
    for _ in range(failures):
        assert outcome(circuit, fail()) == "Boom"


def memory_factory(name: str) -> BreakerStorage:
    return MemoryStorage(name)


def redis_factory(client: Any, namespace: str) -> StorageFactory:
    return lambda name: RedisStorage(client, name, namespace=namespace)


@contextlib.contextmanager
def recording() -> Iterator[events.Recorder]:
    """Capture every event (and only capture: no logging) within the block."""
    recorder = events.Recorder()
    with events.use_hooks(recorder):
        yield recorder


def transitions(recorder: events.Recorder, name: str | None = None) -> list[tuple[str, str]]:
    return [
        (e.old_state, e.new_state)
        for e in recorder.of(events.BreakerStateChanged)
        if name is None or e.name == name
    ]
