"""Insight delivery: POST an insight to the sink, retrying transient failures, and say how it went.

Every attempt of one delivery carries the same ``Idempotency-Key``, so a retry after a lost answer
cannot deliver twice to a sink that honours it. Transient failures (timeouts, dropped connections,
408/429/5xx) are retried with backoff within the delivery's budget; a 4xx is final.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from shared.lazy import Memo
from shared.obs import current_trace
from shared.resilience.retries import retry
from shared.resilience.sessions import LazySession
from shared.resilience.transient import HttpStatusError, parse_retry_after

#: The insights delivery SLI: config/slos.yaml reads it from Cloud Monitoring as
#: ``workload.googleapis.com/insights/deliveries`` (the exporter's prefix + this name).
DELIVERIES_METRIC = "insights/deliveries"


def _make_counter(metric: str) -> Any:
    from shared.obs import telemetry

    return telemetry.meter("examples.graph_ask").create_counter(
        metric, unit="1", description="Insight deliveries by outcome"
    )


_counters: Memo[str, Any] = Memo(_make_counter)


def _deliveries() -> Any:
    """The deliveries counter (attribute ``outcome``: delivered | failed), made on first use."""
    return _counters(DELIVERIES_METRIC)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one delivery: ``attempts`` made, ``error`` of the last one when it failed."""

    delivered: bool
    attempts: int
    delivery_id: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    """Deliveries of this instance so far."""

    delivered: int
    failed: int
    attempts: int


class InsightSink:
    """Posts insights to one sink URL; ``budget_s`` bounds a delivery with all its retries."""

    def __init__(self, url: str, *, attempts: int, timeout_s: float, budget_s: float) -> None:
        self.url = url
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.budget_s = budget_s
        self._session = LazySession()
        self._lock = threading.Lock()  # guards the counters
        self._delivered = 0
        self._failed = 0
        self._attempts = 0

    def deliver(self, insight: Mapping[str, Any], user: str | None) -> Delivery:
        """Deliver ``insight`` (for ``user``), retrying; never raises for a failed delivery."""
        delivery_id = uuid.uuid4().hex
        body = {"delivery_id": delivery_id, "insight": dict(insight), "user": user}
        headers = {"Accept": "application/json", "Idempotency-Key": delivery_id}
        trace = current_trace()
        if trace is not None:
            headers.update(trace.to_headers())
        made = 0

        def attempt() -> None:
            nonlocal made
            made += 1
            response = self._session.get().post(
                self.url, json=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
            response.close()
            if not 200 <= response.status_code < 300:
                raise HttpStatusError(
                    response.status_code,
                    f"insights sink answered HTTP {response.status_code}",
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )

        error: str | None = None
        try:
            retry(
                attempt,
                self.attempts,
                base=0.1,
                cap=1.0,
                deadline=self.budget_s,
                name="insights",
            )
        except (requests.RequestException, HttpStatusError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            self._attempts += made
            if error is None:
                self._delivered += 1
            else:
                self._failed += 1
        _deliveries().add(1, {"outcome": "delivered" if error is None else "failed"})
        return Delivery(error is None, made, delivery_id, error)

    def counts(self) -> DeliveryCounts:
        with self._lock:
            return DeliveryCounts(self._delivered, self._failed, self._attempts)
