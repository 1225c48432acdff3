"""Where a :class:`~shared.resilience.circuit.Circuit` keeps its state: memory or Redis.

Both classes are :class:`pybreaker.CircuitBreakerStorage` subclasses, so pybreaker's state machine
drives them (a plain ``pybreaker.CircuitBreaker`` can use them too). They add what the circuit
needs to stay cheap and to behave as one breaker across instances:

* :meth:`BreakerStorage.load` reads state, opened-at and the failure count in one step (one Redis
  round trip);
* :meth:`BreakerStorage.trip` writes "open" and the instant it opened together, so no reader sees
  one without the other, and every instance computes the same end of the open period (pybreaker
  issue #24; pybreaker's ``CircuitRedisStorage`` also truncates that instant to whole seconds);
* :meth:`BreakerStorage.try_half_open` moves open -> half-open only if nobody re-opened it
  meanwhile (compare-and-set), so a stale instance cannot cut a fresh open period short;
* :attr:`BreakerStorage.seen_failures` is the failure count as this object last read or wrote it
  (no I/O), so a success after no failure costs no write.

Instants are float seconds on the circuit's clock: wall time (``clock.time()``) for shared
storage, the monotonic clock for :class:`MemoryStorage`.

:class:`RedisStorage` never swallows a Redis failure: it raises
:class:`~shared.resilience.errors.StorageError`, and the circuit falls back to its declared state
and reports :class:`~shared.resilience.events.BreakerStorageFailed`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

import pybreaker

from shared.resilience.errors import StorageError

CLOSED = pybreaker.STATE_CLOSED
OPEN = pybreaker.STATE_OPEN
HALF_OPEN = pybreaker.STATE_HALF_OPEN
STATES = frozenset({CLOSED, OPEN, HALF_OPEN})
State = Literal["closed", "open", "half-open"]

#: What :meth:`BreakerStorage.load` returns: ``(state, opened_at, consecutive failures)``.
Snapshot = tuple[str, float | None, int]


class BreakerStorage(pybreaker.CircuitBreakerStorage):
    """pybreaker's storage interface plus the atomic steps :class:`Circuit` relies on."""

    #: True when several processes see the same state (the circuit then uses wall time).
    shared: ClassVar[bool] = False

    def load(self) -> Snapshot:
        """``(state, opened_at, consecutive failures)`` in one consistent read."""
        raise NotImplementedError

    def trip(self, opened_at: float) -> None:
        """Set the state to open, opened at ``opened_at``, with no half-open successes."""
        raise NotImplementedError

    def try_half_open(self, opened_at: float | None) -> bool:
        """Open -> half-open if still open since ``opened_at``; False if someone changed it."""
        raise NotImplementedError

    def clear(self) -> None:
        """Forget everything (back to closed, counters zero)."""
        raise NotImplementedError

    @property
    def seen_failures(self) -> int:
        """The consecutive-failure count as this object last read or wrote it; no I/O."""
        raise NotImplementedError

    @property
    def opened_at_time(self) -> float | None:
        """When the circuit last opened, in seconds on the circuit's clock."""
        raise NotImplementedError

    # pybreaker's own interface speaks datetimes; ours speaks float seconds.
    @property
    def opened_at(self) -> datetime | None:
        at = self.opened_at_time
        return None if at is None else datetime.fromtimestamp(at, UTC)

    @opened_at.setter
    def opened_at(self, value: datetime) -> None:
        self._set_opened_at(value.timestamp())

    def _set_opened_at(self, at: float) -> None:
        raise NotImplementedError


class MemoryStorage(BreakerStorage):
    """State in this process only (the default). Plain attributes: read on the hot path."""

    shared: ClassVar[bool] = False

    def __init__(self, name: str = "memory") -> None:
        super().__init__(name)
        self._state = CLOSED
        self._fail_counter = 0
        self._success_counter = 0
        self._opened_at: float | None = None

    @property
    def state(self) -> str:
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        self._state = state

    @property
    def counter(self) -> int:
        return self._fail_counter

    @property
    def success_counter(self) -> int:
        return self._success_counter

    @property
    def seen_failures(self) -> int:
        return self._fail_counter

    def increment_counter(self) -> None:
        self._fail_counter += 1

    def reset_counter(self) -> None:
        self._fail_counter = 0

    def increment_success_counter(self) -> None:
        self._success_counter += 1

    def reset_success_counter(self) -> None:
        self._success_counter = 0

    @property
    def opened_at_time(self) -> float | None:
        return self._opened_at

    def _set_opened_at(self, at: float) -> None:
        self._opened_at = at

    def load(self) -> Snapshot:
        return self._state, self._opened_at, self._fail_counter

    def trip(self, opened_at: float) -> None:
        self._opened_at = opened_at
        self._success_counter = 0
        self._state = OPEN

    def try_half_open(self, opened_at: float | None) -> bool:
        if self._state != OPEN or self._opened_at != opened_at:
            return False
        self._success_counter = 0
        self._state = HALF_OPEN
        return True

    def clear(self) -> None:
        self._state = CLOSED
        self._fail_counter = self._success_counter = 0
        self._opened_at = None

    def __repr__(self) -> str:
        return f"MemoryStorage({self.name!r}, state={self._state!r})"


# Compare-and-set open -> half-open: the instant is compared as the exact string we wrote.
_TRY_HALF_OPEN = """
local cur = redis.call('HMGET', KEYS[1], 'state', 'opened_at')
if cur[1] == 'open' and (cur[2] or '') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'half-open', 'successes', '0')
  return 1
end
return 0
"""


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _instant(at: float | None) -> str:
    return "" if at is None else repr(float(at))


class RedisStorage(BreakerStorage):
    """State in one Redis hash, shared by every instance that uses the same ``name``.

    The hash ``{namespace}:{name}`` holds ``state``, ``opened_at`` (wall-clock seconds, full
    precision), ``fails`` and ``successes``; a missing hash means closed. ``client`` is a
    ``redis://`` URL, which gets :func:`~shared.resilience.redis_client.storage_client` (0.25 s
    timeouts, no client-side retries), or a redis-py client used as configured (then give it
    short timeouts: redis-py's defaults hold a call 4 s on a refused connection and a minute on
    a stalled server, and the breaker waits with it). Nothing is sent until the first call.
    """

    shared: ClassVar[bool] = True

    def __init__(self, client: Any, name: str, *, namespace: str = "resilience:breaker") -> None:
        super().__init__(name)
        if isinstance(client, str):
            from shared.resilience.redis_client import storage_client

            client = storage_client(client)
        self._client = client
        self.key = f"{namespace}:{name}" if namespace else name
        self._half_open_script: Any = None
        self._seen_failures = 0

    def _fail(self, op: str, exc: Exception) -> StorageError:
        return StorageError(f"redis {op} on {self.key!r} failed: {type(exc).__name__}: {exc}")

    def _hget(self, field: str) -> str | None:
        try:
            return _text(self._client.hget(self.key, field))
        except Exception as exc:  # redis.RedisError, OSError, ...: all mean "storage failed"
            raise self._fail("HGET", exc) from exc

    def _hset(self, mapping: dict[str, str]) -> None:
        try:
            self._client.hset(self.key, mapping=mapping)
        except Exception as exc:
            raise self._fail("HSET", exc) from exc

    def _hincr(self, field: str) -> int:
        try:
            return int(self._client.hincrby(self.key, field, 1))
        except Exception as exc:
            raise self._fail("HINCRBY", exc) from exc

    @staticmethod
    def _state_of(raw: str | None) -> str:
        state = raw or CLOSED
        if state not in STATES:
            raise StorageError(f"unknown breaker state {state!r} in Redis")
        return state

    def _int(self, raw: str | None) -> int:
        try:
            return int(raw) if raw else 0
        except ValueError as exc:
            raise self._fail("decode", exc) from exc

    def _float(self, raw: str | None) -> float | None:
        try:
            return float(raw) if raw else None
        except ValueError as exc:
            raise self._fail("decode", exc) from exc

    # -- pybreaker's interface -------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state_of(self._hget("state"))

    @state.setter
    def state(self, state: str) -> None:
        self._hset({"state": str(state)})

    @property
    def counter(self) -> int:
        return self._int(self._hget("fails"))

    @property
    def success_counter(self) -> int:
        return self._int(self._hget("successes"))

    @property
    def seen_failures(self) -> int:
        return self._seen_failures

    def increment_counter(self) -> None:
        self._seen_failures = self._hincr("fails")

    def reset_counter(self) -> None:
        self._hset({"fails": "0"})
        self._seen_failures = 0

    def increment_success_counter(self) -> None:
        self._hincr("successes")

    def reset_success_counter(self) -> None:
        self._hset({"successes": "0"})

    @property
    def opened_at_time(self) -> float | None:
        return self._float(self._hget("opened_at"))

    def _set_opened_at(self, at: float) -> None:
        self._hset({"opened_at": _instant(at)})

    # -- the additions -------------------------------------------------------------------------
    def load(self) -> Snapshot:
        try:
            raw = self._client.hmget(self.key, ["state", "opened_at", "fails"])
        except Exception as exc:
            raise self._fail("HMGET", exc) from exc
        state, opened_at, fails = (_text(v) for v in raw)
        snapshot = self._state_of(state), self._float(opened_at), self._int(fails)
        self._seen_failures = snapshot[2]
        return snapshot

    def trip(self, opened_at: float) -> None:
        self._hset({"state": OPEN, "opened_at": _instant(opened_at), "successes": "0"})

    def try_half_open(self, opened_at: float | None) -> bool:
        try:
            if self._half_open_script is None:  # computes the SHA locally; no I/O
                self._half_open_script = self._client.register_script(_TRY_HALF_OPEN)
            return bool(self._half_open_script(keys=[self.key], args=[_instant(opened_at)]))
        except Exception as exc:
            raise self._fail("EVALSHA", exc) from exc

    def clear(self) -> None:
        try:
            self._client.delete(self.key)
        except Exception as exc:
            raise self._fail("DEL", exc) from exc
        self._seen_failures = 0

    # Two RedisStorage objects on the same client and key are the same storage (the registry
    # compares configurations, and callers may build a new one per request).
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RedisStorage):
            return NotImplemented
        return self._client is other._client and self.key == other.key

    def __hash__(self) -> int:
        return hash((RedisStorage, id(self._client), self.key))

    def __repr__(self) -> str:
        return f"RedisStorage(key={self.key!r})"
