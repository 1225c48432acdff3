"""Redis clients for shared state (limiter and breaker storages): one short timeout, no retries.

A storage declares what it does when Redis fails (a local window, a fallback breaker state). With
redis-py's defaults a call first waits out the client's own recovery: 3 retries with exponential
backoff (4.4 s against a closed port) and 5 s socket timeouts (a stalled server held a call for
60 s). A storage client gives up after one ``timeout`` instead, so an outage costs one timeout
and the storage's fallback takes over at once.
"""

from __future__ import annotations

import math

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.resilience.errors import ConfigError

__all__ = ["DEFAULT_TIMEOUT", "storage_client"]

DEFAULT_TIMEOUT = 0.25
"""Seconds a storage client waits to connect, and for each reply."""


def storage_client(url: str, *, timeout: float = DEFAULT_TIMEOUT) -> redis.Redis:
    """A client for ``url`` (``redis://host:port/db``, ``rediss://``, ``unix://``) that waits at
    most ``timeout`` seconds to connect and for each reply, and never retries on its own."""
    if isinstance(timeout, bool) or not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    try:
        return redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
    except ValueError as exc:  # the URL is left out of the message: it may hold a password
        raise ConfigError(f"url must be a redis://, rediss:// or unix:// URL: {exc}") from exc
