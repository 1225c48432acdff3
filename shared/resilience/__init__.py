"""Resilience patterns shared by every function: breaker, retry, fallback, cache, limiters.

The front door is the dozen names of the README's example (``__all__``). Everything else is
imported from its module: :mod:`~shared.resilience.circuit` (``CircuitConfig``, storages,
``reset_breakers``), :mod:`~shared.resilience.retries`, :mod:`~shared.resilience.fallback`,
:mod:`~shared.resilience.cache`, :mod:`~shared.resilience.limiter`,
:mod:`~shared.resilience.admission`, :mod:`~shared.resilience.events` (hooks, event types),
:mod:`~shared.resilience.errors`, :mod:`~shared.resilience.telemetry`,
:mod:`~shared.resilience.testing` and :mod:`~shared.resilience.redis_client`.

Each name's module is imported on its first use (:mod:`shared.lazy`), so that a function using one
piece (say the cache) does not pay for the others' dependencies at cold start: pybreaker and
redis come with the breaker, requests with the fallback chain, tenacity with retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:
    from shared.resilience.admission import PriorityAdmission
    from shared.resilience.cache import cached
    from shared.resilience.circuit import Circuit, breaker
    from shared.resilience.compose import with_breaker, with_breaker_and_retry
    from shared.resilience.events import METRICS
    from shared.resilience.fallback import ask_with_fallback
    from shared.resilience.limiter import RateLimiter, throttle
    from shared.resilience.retries import retry, retrying

__all__ = [
    "METRICS",
    "Circuit",
    "PriorityAdmission",
    "RateLimiter",
    "ask_with_fallback",
    "breaker",
    "cached",
    "retry",
    "retrying",
    "throttle",
    "with_breaker",
    "with_breaker_and_retry",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Circuit": "circuit",
        "breaker": "circuit",
        "with_breaker": "compose",
        "with_breaker_and_retry": "compose",
        "retry": "retries",
        "retrying": "retries",
        "ask_with_fallback": "fallback",
        "cached": "cache",
        "throttle": "limiter",
        "RateLimiter": "limiter",
        "PriorityAdmission": "admission",
        "METRICS": "events",
    },
)
