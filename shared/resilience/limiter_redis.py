"""A sliding-window limiter store in Redis, shared by every process, with a declared fallback.

One Lua script applies the rule of :mod:`limiter_storage` (clamp to the newest score, prune,
count, record) on a sorted set (score = the caller's ``clock.time()``, member = a random token so
simultaneous acquisitions never collide), so the check-and-record is atomic across processes.
Timestamps travel as strings both ways because Lua would format numbers with 14 significant
digits and Redis truncates Lua numbers in replies.

Fallback (``on_failure="fail_open"``, the default): when Redis raises, this process keeps
limiting with a local in-memory window and emits :class:`events.LimiterStorageFailed` (``name``
``"limiter:<key>"``, ``fallback="memory"``) once per outage; Redis is probed again after
``retry_interval`` seconds. During an outage each process enforces ``limit`` on its own, so N
processes may admit up to N x ``limit`` in total: availability is chosen over exactness.
``on_failure="raise"`` raises :class:`StorageError` instead (fail closed). ``reset`` follows
the same policy (the local window is always cleared).

Given a URL, the storage builds its client with ``redis_client.storage_client``: one short
timeout and no client-side retries, so an outage costs one timeout (not redis-py's 4.4 s of
retries, or 60 s against a stalled server) before the fallback. A client passed in is used as
configured.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any, Literal

import redis

from shared.resilience import events
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.errors import ConfigError, StorageError
from shared.resilience.limiter_storage import Decision, MemoryLimiterStorage
from shared.resilience.redis_client import storage_client

# KEYS[1] = sorted set; ARGV = now, window, limit, member, ttl in ms. Scores go in and out as
# strings: Lua would print a number with 14 significant digits, '%.17g' round-trips a double.
ACQUIRE_SCRIPT = """
local at = ARGV[1]
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) > tonumber(at) then at = newest[2] end
local cutoff = string.format('%.17g', tonumber(at) - tonumber(ARGV[2]))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', cutoff)
local count = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[3])
if count < limit then
  redis.call('ZADD', KEYS[1], at, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {1, count + 1, '', at}
end
local freeing = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
return {0, count, freeing[2], at}
"""

OnFailure = Literal["fail_open", "raise"]


class RedisLimiterStorage:
    """Sliding-window logs in Redis sorted sets under ``prefix + key``; see the module notes.

    ``client`` is a Redis URL (its client then comes from ``storage_client``) or a ready
    ``redis.Redis``; ``storage_client(url, timeout=...)`` chooses another timeout.
    """

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        prefix: str = "resilience:limiter:",
        on_failure: OnFailure = "fail_open",
        retry_interval: float = 5.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if on_failure not in ("fail_open", "raise"):
            raise ConfigError(f"on_failure must be 'fail_open' or 'raise', got {on_failure!r}")
        if retry_interval < 0:
            raise ConfigError(f"retry_interval must be >= 0 seconds, got {retry_interval!r}")
        if isinstance(client, str):
            client = storage_client(client)
        self._client = client
        self._prefix = prefix
        self._on_failure = on_failure
        self._retry_interval = retry_interval
        self._clock = clock
        self._script = client.register_script(ACQUIRE_SCRIPT)
        self._fallback = MemoryLimiterStorage()
        self._lock = threading.Lock()
        self._down_until: float | None = None
        self.failures = 0

    @property
    def degraded(self) -> bool:
        """True while acquisitions go to the local fallback window."""
        with self._lock:
            return self._down_until is not None

    def acquire(self, key: str, limit: int, window: float, now: float) -> Decision:
        if self._on_failure == "fail_open" and self._skip_redis():
            return self._fallback.acquire(key, limit, window, now)
        ttl_ms = math.ceil(window * 1000) + 1000
        member = f"{now!r}:{os.urandom(8).hex()}"
        args: list[str | int] = [repr(now), repr(window), limit, member, ttl_ms]
        try:
            reply: Any = self._script(keys=[self._prefix + key], args=args)
        except redis.RedisError as exc:
            return self._failed(key, exc, limit, window, now)
        self._recovered()
        allowed, count, freeing, at = int(reply[0]), int(reply[1]), reply[2], float(reply[3])
        if allowed:
            return Decision(True, 0.0, max(0, limit - count), at)
        return Decision(False, max(0.0, float(freeing) + window - now), 0, at)

    def reset(self, key: str) -> None:
        self._fallback.reset(key)
        try:
            self._client.delete(self._prefix + key)
        except redis.RedisError as exc:
            if self._on_failure == "raise":
                raise StorageError(f"could not reset limiter {key!r} in Redis: {exc}") from exc
            self._mark_down(key, exc)
        else:
            self._recovered()

    def _skip_redis(self) -> bool:
        with self._lock:
            return self._down_until is not None and self._clock.monotonic() < self._down_until

    def _recovered(self) -> None:
        if self._down_until is not None:
            with self._lock:
                self._down_until = None

    def _failed(
        self, key: str, exc: redis.RedisError, limit: int, window: float, now: float
    ) -> Decision:
        if self._on_failure == "raise":
            raise StorageError(f"limiter {key!r}: Redis failed: {exc}") from exc
        self._mark_down(key, exc)
        return self._fallback.acquire(key, limit, window, now)

    def _mark_down(self, key: str, exc: redis.RedisError) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = self._clock.monotonic() + self._retry_interval
            self.failures += 1
        if first:
            events.emit(
                events.LimiterStorageFailed(f"limiter:{key}", error=repr(exc), fallback="memory")
            )
