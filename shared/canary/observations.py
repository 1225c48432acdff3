"""Observations from the local SQLite request store (the local stand-in for Cloud Monitoring).

Cloud Monitoring numbers are passed in directly as :class:`~shared.canary.gate.Observation`.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.canary.gate import Observation
from shared.slo.local_store import LocalStore


def observe_local(
    store: LocalStore,
    functions: Sequence[str],
    start: float,
    end: float,
    *,
    error_status_min: int = 500,
) -> Observation:
    """Requests of ``functions`` with ``start <= at < end`` (epoch seconds): count, errors
    (status >= ``error_status_min``) and p95 latency in ms."""
    counts = store.counts(functions, start, end, error_status_min=error_status_min)
    latency = store.latency_summary(functions, start, end, threshold_ms=0.0, q=95)
    return Observation(counts.total, counts.bad, latency.percentile_ms)
