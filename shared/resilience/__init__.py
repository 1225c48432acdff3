"""Resilience patterns shared by every function: breaker, retry, fallback, cache, limiters.

The public surface is what ``__all__`` lists; names not listed here are internal.
Submodules are imported on first use of one of their names (PEP 562), so that a function importing
one piece (say the cache) does not pay for the others' dependencies (pybreaker pulls in redis,
the fallback chain pulls in requests): cold start stays small.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "DEFAULT_STALE_TTL": "cache",
    "PLANS": "admission",
    "Plan": "admission",
    "ThrottleStats": "limiter",
    "LimiterStats": "limiter",
    "LimiterStorage": "limiter_storage",
    "Decision": "limiter_storage",
    "AdmissionRejected": "errors",
    "AdmissionStats": "admission",
    "AllModelsFailed": "fallback",
    "BreakerStats": "circuit",
    "BreakerStorage": "breaker_storage",
    "CacheResult": "cache",
    "CacheStats": "cache",
    "Circuit": "circuit",
    "CircuitConfig": "circuit",
    "CircuitOpenError": "errors",
    "Clock": "clock",
    "ConfigError": "errors",
    "DEFAULT_CHAIN": "llm",
    "Event": "events",
    "FakeClock": "clock",
    "FallbackChain": "fallback",
    "FallbackResult": "fallback",
    "Hook": "events",
    "HttpStatusError": "transient",
    "LoggingHook": "events",
    "METRICS": "events",
    "MemoryLimiterStorage": "limiter_storage",
    "MemoryStorage": "breaker_storage",
    "Metrics": "events",
    "MissingApiKey": "llm",
    "ModelFailure": "fallback",
    "ModelSpec": "llm",
    "ModelTable": "llm",
    "PriorityAdmission": "admission",
    "RateLimitExceeded": "errors",
    "RateLimiter": "limiter",
    "Recorder": "events",
    "RedisLimiterStorage": "limiter_redis",
    "RedisStorage": "breaker_storage",
    "ResilienceError": "errors",
    "RetryPolicy": "retries",
    "SYSTEM_CLOCK": "clock",
    "StorageError": "errors",
    "SystemClock": "clock",
    "TTLCache": "cache",
    "Throttle": "limiter",
    "Ticket": "admission",
    "TransientError": "transient",
    "add_hook": "events",
    "ask_with_fallback": "fallback",
    "ask_with_fallback_limited": "fallback",
    "breaker": "circuit",
    "breakers": "circuit",
    "cache_get": "cache",
    "cache_set": "cache",
    "cached": "cache",
    "cached_result": "cache",
    "default_cache": "cache",
    "emit": "events",
    "is_business_error": "transient",
    "is_transient": "transient",
    "load_model_table": "llm",
    "reset_breakers": "circuit",
    "retry": "retries",
    "retry_after_of": "transient",
    "retrying": "retries",
    "set_hooks": "events",
    "throttle": "limiter",
    "use_hooks": "events",
    "with_breaker": "compose",
    "with_breaker_and_retry": "compose",
}

__all__ = [
    "DEFAULT_CHAIN",
    "DEFAULT_STALE_TTL",
    "METRICS",
    "PLANS",
    "SYSTEM_CLOCK",
    "AdmissionRejected",
    "AdmissionStats",
    "AllModelsFailed",
    "BreakerStats",
    "BreakerStorage",
    "CacheResult",
    "CacheStats",
    "Circuit",
    "CircuitConfig",
    "CircuitOpenError",
    "Clock",
    "ConfigError",
    "Decision",
    "Event",
    "FakeClock",
    "FallbackChain",
    "FallbackResult",
    "Hook",
    "HttpStatusError",
    "LimiterStats",
    "LimiterStorage",
    "LoggingHook",
    "MemoryLimiterStorage",
    "MemoryStorage",
    "Metrics",
    "MissingApiKey",
    "ModelFailure",
    "ModelSpec",
    "ModelTable",
    "Plan",
    "PriorityAdmission",
    "RateLimitExceeded",
    "RateLimiter",
    "Recorder",
    "RedisLimiterStorage",
    "RedisStorage",
    "ResilienceError",
    "RetryPolicy",
    "StorageError",
    "SystemClock",
    "TTLCache",
    "Throttle",
    "ThrottleStats",
    "Ticket",
    "TransientError",
    "add_hook",
    "ask_with_fallback",
    "ask_with_fallback_limited",
    "breaker",
    "breakers",
    "cache_get",
    "cache_set",
    "cached",
    "cached_result",
    "default_cache",
    "emit",
    "is_business_error",
    "is_transient",
    "load_model_table",
    "reset_breakers",
    "retry",
    "retry_after_of",
    "retrying",
    "set_hooks",
    "throttle",
    "use_hooks",
    "with_breaker",
    "with_breaker_and_retry",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from shared.resilience.admission import PLANS, AdmissionStats, Plan, PriorityAdmission, Ticket
    from shared.resilience.breaker_storage import BreakerStorage, MemoryStorage, RedisStorage
    from shared.resilience.cache import (
        DEFAULT_STALE_TTL,
        CacheResult,
        CacheStats,
        TTLCache,
        cache_get,
        cache_set,
        cached,
        cached_result,
        default_cache,
    )
    from shared.resilience.circuit import (
        BreakerStats,
        Circuit,
        CircuitConfig,
        breaker,
        breakers,
        reset_breakers,
    )
    from shared.resilience.clock import SYSTEM_CLOCK, Clock, FakeClock, SystemClock
    from shared.resilience.compose import with_breaker, with_breaker_and_retry
    from shared.resilience.errors import (
        AdmissionRejected,
        CircuitOpenError,
        ConfigError,
        RateLimitExceeded,
        ResilienceError,
        StorageError,
    )
    from shared.resilience.events import (
        METRICS,
        Event,
        Hook,
        LoggingHook,
        Metrics,
        Recorder,
        add_hook,
        emit,
        set_hooks,
        use_hooks,
    )
    from shared.resilience.fallback import (
        AllModelsFailed,
        FallbackChain,
        FallbackResult,
        ModelFailure,
        ask_with_fallback,
        ask_with_fallback_limited,
    )
    from shared.resilience.limiter import (
        LimiterStats,
        RateLimiter,
        Throttle,
        ThrottleStats,
        throttle,
    )
    from shared.resilience.limiter_redis import RedisLimiterStorage
    from shared.resilience.limiter_storage import Decision, LimiterStorage, MemoryLimiterStorage
    from shared.resilience.llm import (
        DEFAULT_CHAIN,
        MissingApiKey,
        ModelSpec,
        ModelTable,
        load_model_table,
    )
    from shared.resilience.retries import RetryPolicy, retry, retrying
    from shared.resilience.transient import (
        HttpStatusError,
        TransientError,
        is_business_error,
        is_transient,
        retry_after_of,
    )
