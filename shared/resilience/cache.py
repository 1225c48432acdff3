"""A bounded in-process TTL cache with single-flight loading and stale-if-error.

TTLs are in SECONDS (the TypeScript seed took milliseconds: ``cached('key', 30000, fn)`` there is
``cached("key", 30, fn)`` here). The module-level :func:`cache_get`, :func:`cache_set`,
:func:`cached` and :func:`cached_result` use one process-wide :class:`TTLCache`
(:func:`default_cache`); build a :class:`TTLCache` for an explicitly owned instance.

Caveats: the cache is per process (each Cloud Functions instance has its own); values are stored
by reference, so callers must not mutate what they get back.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

from shared.resilience import events
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.errors import ConfigError

T = TypeVar("T")

_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class CacheResult(Generic[T]):
    """What a load returned: ``hit`` when served fresh from the cache, ``stale`` when ``fn``
    failed and an expired value (within the stale grace) was served instead."""

    value: T
    stale: bool
    hit: bool


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A snapshot of one cache's counters. ``loads`` counts calls of ``fn`` (single-flight means
    several misses may share one load); ``load_errors`` counts loads that raised."""

    name: str
    size: int
    max_entries: int
    hits: int
    misses: int
    stale: int
    loads: int
    load_errors: int
    evictions: int

    @property
    def hit_rate(self) -> float | None:
        """Share of lookups answered from the cache (fresh or stale); None before any lookup."""
        lookups = self.hits + self.misses + self.stale
        return (self.hits + self.stale) / lookups if lookups else None


class _Entry:
    """One cached value; ``expires`` and ``stale_until`` are on the clock's monotonic scale.

    ``hit`` is the event every hit on this entry reports: events are immutable, so building it
    once on the (slow) store path keeps the hit path free of allocation.
    """

    __slots__ = ("expires", "hit", "stale_until", "value")

    def __init__(self, hit: events.CacheAccessed, value: Any, expires: float, grace: float) -> None:
        self.hit = hit
        self.value = value
        self.expires = expires
        self.stale_until = expires + grace


class _Flight:
    """One in-progress load that concurrent misses on the same key wait for."""

    __slots__ = ("done", "error", "stale", "value", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.stale = False
        self.waiters = 0  # callers other than the loader sharing this load


def _check_ttl(ttl: float) -> None:
    if not ttl > 0:  # also catches NaN
        raise ConfigError(f"ttl must be > 0 seconds (math.inf for no expiry), got {ttl!r}")


def _check_stale_ttl(stale_ttl: float) -> float:
    if math.isnan(stale_ttl) or stale_ttl < 0:
        raise ConfigError(f"stale_ttl must be >= 0 seconds, got {stale_ttl!r}")
    return stale_ttl


class TTLCache:
    """A thread-safe LRU cache whose entries expire after a TTL (seconds).

    ``stale_ttl`` (seconds, default 0 = off) keeps an expired entry that long past its TTL so
    :meth:`get_or_load` can serve it, marked stale, when a reload fails. ``fn`` always runs
    outside the cache's lock; concurrent misses on one key share one call of ``fn``.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        clock: Clock = SYSTEM_CLOCK,
        name: str = "default",
        stale_ttl: float = 0.0,
    ) -> None:
        if max_entries < 1:
            raise ConfigError(f"max_entries must be >= 1, got {max_entries!r}")
        self.name = name
        self.max_entries = max_entries
        self.stale_ttl = _check_stale_ttl(stale_ttl)
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
        self._hits = 0
        self._misses = 0
        self._stale = 0
        self._loads = 0
        self._load_errors = 0
        self._evictions = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def get(self, key: str, default: Any = None) -> Any:
        """The fresh value under ``key``, or ``default`` (expired values count as misses)."""
        value = self._fresh(key)
        if value is not _MISSING:
            return value
        with self._lock:
            self._misses += 1
        events.emit(events.CacheAccessed(self.name, "miss", key))
        return default

    def set(self, key: str, value: Any, ttl: float, *, stale_ttl: float | None = None) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, evicting the least recently used
        entry when full. ``stale_ttl`` overrides the cache's stale grace for this entry."""
        _check_ttl(ttl)
        grace = self.stale_ttl if stale_ttl is None else _check_stale_ttl(stale_ttl)
        now = self._clock.monotonic()
        entry = _Entry(events.CacheAccessed(self.name, "hit", key), value, now + ttl, grace)
        with self._lock:
            self._store(key, entry)

    def delete(self, key: str) -> bool:
        """Drop ``key``; True when it was present."""
        with self._lock:
            return self._entries.pop(key, None) is not None

    def clear(self) -> None:
        """Drop every entry (counters are kept)."""
        with self._lock:
            self._entries.clear()

    def reset(self) -> None:
        """Drop every entry and zero the counters; a load in flight still ends in its waiters."""
        with self._lock:
            self._entries.clear()
            self._hits = self._misses = self._stale = 0
            self._loads = self._load_errors = self._evictions = 0

    def waiting(self, key: str) -> int:
        """How many callers wait for the load of ``key`` in flight now (0 when none is)."""
        with self._lock:
            flight = self._flights.get(key)
            return 0 if flight is None else flight.waiters

    def get_or_load(
        self, key: str, ttl: float, fn: Callable[[], T], *, stale_ttl: float | None = None
    ) -> T:
        """The cached value, or ``fn()`` stored for ``ttl`` seconds; stale-if-error applies."""
        _check_ttl(ttl)
        value = self._fresh(key)
        if value is not _MISSING:
            return cast(T, value)
        return self._miss(key, ttl, fn, stale_ttl).value

    def load(
        self, key: str, ttl: float, fn: Callable[[], T], *, stale_ttl: float | None = None
    ) -> CacheResult[T]:
        """Like :meth:`get_or_load` but says whether the value was a hit or stale.

        On a miss exactly one caller runs ``fn`` (the others wait for it and share its value or
        exception). When ``fn`` raises and an expired value is still within its stale grace, that
        value is returned with ``stale=True``; otherwise the exception propagates to every waiter.
        """
        _check_ttl(ttl)
        value = self._fresh(key)
        if value is not _MISSING:
            return CacheResult(cast(T, value), stale=False, hit=True)
        return self._miss(key, ttl, fn, stale_ttl)

    def _fresh(self, key: str) -> Any:
        """The fresh value (counted and reported as a hit) or ``_MISSING``; the hot path."""
        now = self._clock.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or now >= entry.expires:
                return _MISSING
            self._entries.move_to_end(key)
            self._hits += 1
        events.emit(entry.hit)
        return entry.value

    def _miss(
        self, key: str, ttl: float, fn: Callable[[], T], stale_ttl: float | None
    ) -> CacheResult[T]:
        if stale_ttl is not None:
            _check_stale_ttl(stale_ttl)
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is not None:
                flight.waiters += 1
            else:
                # Another caller may have stored the value since our lookup.
                entry = self._entries.get(key)
                if entry is not None and self._clock.monotonic() < entry.expires:
                    self._entries.move_to_end(key)
                    self._hits += 1
                    fresh = entry
                else:
                    flight = self._flights[key] = _Flight()
                    self._loads += 1
        if flight is None:
            events.emit(fresh.hit)
            return CacheResult(cast(T, fresh.value), stale=False, hit=True)
        if leader:
            self._run_flight(key, ttl, fn, flight, stale_ttl)
        else:
            flight.done.wait()
        outcome: Literal["stale", "miss"] = "stale" if flight.stale else "miss"
        with self._lock:
            if flight.stale:
                self._stale += 1
            else:
                self._misses += 1
        events.emit(events.CacheAccessed(self.name, outcome, key))
        if flight.error is not None:
            raise flight.error
        return CacheResult(cast(T, flight.value), stale=flight.stale, hit=False)

    def _run_flight(
        self,
        key: str,
        ttl: float,
        fn: Callable[[], Any],
        flight: _Flight,
        stale_ttl: float | None,
    ) -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised by load() in every waiter
            now = self._clock.monotonic()
            with self._lock:
                self._load_errors += 1
                entry = self._entries.get(key)
                if isinstance(exc, Exception) and entry is not None and now < entry.stale_until:
                    flight.value, flight.stale = entry.value, True
                else:
                    flight.error = exc
                    if entry is not None and now >= entry.stale_until:
                        del self._entries[key]  # past its grace: useless, free the slot
                del self._flights[key]
            flight.done.set()
            return
        grace = self.stale_ttl if stale_ttl is None else stale_ttl
        now = self._clock.monotonic()
        entry = _Entry(events.CacheAccessed(self.name, "hit", key), value, now + ttl, grace)
        with self._lock:
            self._store(key, entry)
            flight.value = value
            del self._flights[key]
        flight.done.set()

    def _store(self, key: str, entry: _Entry) -> None:
        # Caller holds the lock.
        entries = self._entries
        if key in entries:
            entries.move_to_end(key)
        elif len(entries) >= self.max_entries:
            entries.popitem(last=False)
            self._evictions += 1
        entries[key] = entry

    def stats(self) -> CacheStats:
        """A consistent snapshot of this cache's counters."""
        with self._lock:
            return CacheStats(
                name=self.name,
                size=len(self._entries),
                max_entries=self.max_entries,
                hits=self._hits,
                misses=self._misses,
                stale=self._stale,
                loads=self._loads,
                load_errors=self._load_errors,
                evictions=self._evictions,
            )


DEFAULT_STALE_TTL = 300.0
"""Seconds the process-wide cache keeps expired values to serve when a reload fails."""

_default_cache = TTLCache(max_entries=4096, name="default", stale_ttl=DEFAULT_STALE_TTL)


def default_cache() -> TTLCache:
    """The process-wide cache behind :func:`cache_get`, :func:`cache_set` and :func:`cached`."""
    return _default_cache


def cache_get(key: str, default: Any = None) -> Any:
    """The fresh value under ``key`` in the process-wide cache, or ``default``."""
    return _default_cache.get(key, default)


def cache_set(key: str, value: Any, ttl: float) -> None:
    """Store ``value`` in the process-wide cache for ``ttl`` SECONDS."""
    _default_cache.set(key, value, ttl)


def cached(key: str, ttl: float, fn: Callable[[], T], *, stale_ttl: float | None = None) -> T:
    """``fn()`` cached under ``key`` for ``ttl`` SECONDS in the process-wide cache.

    Single-flight and stale-if-error (grace ``stale_ttl`` seconds, default
    :data:`DEFAULT_STALE_TTL`) apply; use :func:`cached_result` to learn whether it was stale.
    """
    return _default_cache.load(key, ttl, fn, stale_ttl=stale_ttl).value


def cached_result(
    key: str, ttl: float, fn: Callable[[], T], *, stale_ttl: float | None = None
) -> CacheResult[T]:
    """Like :func:`cached` but returns a :class:`CacheResult` (value, stale, hit)."""
    return _default_cache.load(key, ttl, fn, stale_ttl=stale_ttl)
