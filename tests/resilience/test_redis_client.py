"""storage_client: one short timeout, no client-side retries, URL errors as ConfigError."""

from __future__ import annotations

import math
import time

import pytest
import redis

from shared.resilience.errors import ConfigError
from shared.resilience.redis_client import DEFAULT_TIMEOUT, storage_client
from tests import services


def test_the_client_never_retries_and_waits_at_most_the_timeout() -> None:
    client = storage_client("redis://127.0.0.1:6379/0", timeout=0.1)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (0.1, 0.1)
    assert client.get_retry().get_retries() == 0
    assert kwargs["retry"].get_retries() == 0


def test_the_default_timeout_is_short() -> None:
    kwargs = storage_client("redis://127.0.0.1:6379/0").connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == DEFAULT_TIMEOUT <= 0.5


def test_a_closed_port_fails_at_once() -> None:
    client = storage_client(f"redis://127.0.0.1:{services.free_port()}/0")
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert time.monotonic() - started < 1.0  # redis-py's defaults: 4.4 s


@pytest.mark.parametrize("timeout", [0, -1, math.nan, math.inf, True])
def test_invalid_timeouts_are_refused(timeout: float) -> None:
    with pytest.raises(ConfigError, match="timeout must be a finite number of seconds > 0"):
        storage_client("redis://127.0.0.1:6379/0", timeout=timeout)


def test_a_bad_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="url must be a redis://") as info:
        storage_client("http://user:s3cret@example.invalid:6379")
    assert "s3cret" not in str(info.value)
