"""Circuit breaker on pybreaker: see :mod:`.circuit` for the behaviour.

Modules, one concept each: :mod:`.config` (the parameters, validated), :mod:`.window` (the
sliding window of the rate rules), :mod:`.states` (closed, open, half-open), :mod:`.adapter`
(the only use of pybreaker's internals), :mod:`.outage` (acting as the fallback state while the
storage fails), :mod:`.exclusion`, :mod:`.storage` (memory, Redis), :mod:`.circuit` and
:mod:`.registry`.
"""

from __future__ import annotations

from shared.resilience.circuit.circuit import BreakerStats, Circuit
from shared.resilience.circuit.config import CircuitConfig, ExcludeRule
from shared.resilience.circuit.registry import breaker, breakers, reset_breakers
from shared.resilience.circuit.storage import BreakerStorage, MemoryStorage, RedisStorage, State

__all__ = [
    "BreakerStats",
    "BreakerStorage",
    "Circuit",
    "CircuitConfig",
    "ExcludeRule",
    "MemoryStorage",
    "RedisStorage",
    "State",
    "breaker",
    "breakers",
    "reset_breakers",
]
