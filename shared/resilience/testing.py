"""One reset of every piece of ``shared.resilience`` global state, for the autouse fixture."""

from __future__ import annotations

from shared.resilience.cache import default_cache
from shared.resilience.circuit import reset_breakers
from shared.resilience.events import METRICS, reset_hooks
from shared.resilience.limiter import default_throttle
from shared.resilience.llm import clear_model_tables
from shared.resilience.llm_providers import default_providers
from shared.resilience.retries import clear_policies

__all__ = ["reset"]


def reset() -> None:
    """Forget what ``shared.resilience`` holds per process: the default hooks (and this
    context's choice), the counters of :data:`~shared.resilience.events.METRICS`, the registered
    breakers, the process-wide cache and throttle, retry()'s memoized policies, the parsed
    model-table files and the default LLM providers (with their HTTP sessions)."""
    reset_hooks()
    METRICS.reset()
    reset_breakers()
    default_cache().reset()
    default_throttle().reset()
    clear_policies()
    clear_model_tables()
    default_providers.cache_clear()
