"""What ``@observed`` sets up once per instance: settings, logging, the request store, samplers.

Settings are read from the environment once, on the first request (never at import), through
:mod:`shared.settings`; a bad value fails that request with a ``SettingsError`` naming the
variable and its range, and the next request tries again. :func:`reset_instances` forgets all of
it (tests call it through :func:`shared.obs.testing.reset`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from shared.obs.logging import setup_logging
from shared.obs.sampling import RequestLogSampler, SamplingConfig, sampling_from_env
from shared.obs.sink_factory import (
    SINK_ALLOWED,
    SINK_ENV,
    FactoryName,
    install_configured_sink,
    parse_factory_name,
)
from shared.settings import Env, once


@dataclass(frozen=True, slots=True)
class RequestSettings:
    """The request path's settings: log sampling and the named request store."""

    sampling: SamplingConfig
    sink: FactoryName | None


@once
def request_settings() -> RequestSettings:
    """``REQUEST_LOG_*`` and ``REQUEST_SINK``, read once per instance."""
    env = Env()
    settings = RequestSettings(
        sampling=sampling_from_env(env),
        sink=env.parse(SINK_ENV, None, parse_factory_name, allowed=SINK_ALLOWED),
    )
    env.check()
    return settings


@dataclass(frozen=True, slots=True)
class Instance:
    """One observed function's per-instance state (its settings are :func:`request_settings`)."""

    sampler: RequestLogSampler


_lock = threading.Lock()
_instances: dict[str, Instance] = {}


def instance(function: str) -> Instance:
    """The state of ``function`` in this instance, set up on its first request."""
    found = _instances.get(function)
    if found is not None:
        return found
    with _lock:
        found = _instances.get(function)
        if found is None:
            settings = request_settings()
            setup_logging(function=function)
            install_configured_sink(settings.sink)
            found = _instances[function] = Instance(RequestLogSampler())
        return found


def reset_instances() -> None:
    """Forget every function's set-up, so the next request sets it up again."""
    with _lock:
        _instances.clear()
