"""Circuit breaker on pybreaker: see :mod:`.circuit` for the behaviour.

One concept per module: :mod:`.config` (the parameters, validated), :mod:`.window` (the sliding
window of the rate rules), :mod:`.states` (closed, open, half-open), :mod:`.adapter` (the only
use of pybreaker's internals), :mod:`.outage` (the fallback state while the storage fails),
:mod:`.exclusion`, :mod:`.storage` (memory, Redis), :mod:`.stats`, :mod:`.circuit` and
:mod:`.registry`.
"""

from __future__ import annotations

from shared.resilience.circuit.circuit import Circuit
from shared.resilience.circuit.config import CircuitConfig, ExcludeRule
from shared.resilience.circuit.registry import breaker, breakers, reset_breakers
from shared.resilience.circuit.stats import BreakerStats
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
