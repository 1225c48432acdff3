"""Per-request records and the sinks that receive them (SLO store, tests, benchmarks).

A sink runs on the request thread, inside the measured request: it must be quick. A sink that
does I/O (a database, a file) belongs behind :class:`shared.obs.batching.BatchingSink`, which
queues records and writes them in batches from its own thread.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

INJECTED_HEADER = "X-Chaos-Injected"
"""Response header whose value ``"true"`` marks a deliberately injected failure."""
COHORT_HEADER = "X-Rollout-Cohort"
"""Response header naming the rollout cohort (``stable``/``candidate``) that served the request;
kept in the record so a rollout's gate can compare the cohorts."""

logger = logging.getLogger("shared.obs.requests")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One served HTTP request. ``latency_ms`` in milliseconds, ``at`` epoch seconds at arrival."""

    function: str
    method: str
    path: str
    status: int
    latency_ms: float
    trace_id: str
    injected: bool
    at: float
    cohort: str = ""

    @property
    def ok(self) -> bool:
        """Whether the request counts as good for an availability SLO (status < 500)."""
        return self.status < 500


class RequestSink(Protocol):
    """Receives every request record; called on the request thread before the response leaves."""

    def __call__(self, record: RequestRecord, /) -> None: ...


_lock = threading.Lock()
_sinks: tuple[RequestSink, ...] = ()


def add_request_sink(sink: RequestSink) -> None:
    """Install ``sink`` after the current ones (a sink already installed is not added twice)."""
    global _sinks
    with _lock:
        if sink not in _sinks:
            _sinks = (*_sinks, sink)


def remove_request_sink(sink: RequestSink) -> None:
    """Uninstall ``sink``; a sink that is not installed is ignored."""
    global _sinks
    with _lock:
        _sinks = tuple(s for s in _sinks if s != sink)


def clear_request_sinks() -> None:
    """Uninstall every sink."""
    global _sinks
    with _lock:
        _sinks = ()


def request_sinks() -> tuple[RequestSink, ...]:
    """The sinks installed now."""
    return _sinks


@contextlib.contextmanager
def use_request_sinks(*sinks: RequestSink) -> Iterator[None]:
    """Within the block, send records only to ``sinks``; restores the previous sinks after."""
    global _sinks
    with _lock:
        previous, _sinks = _sinks, tuple(sinks)
    try:
        yield
    finally:
        with _lock:
            _sinks = previous


def publish_request(record: RequestRecord) -> None:
    """Send ``record`` to every sink; a failing sink is logged and skipped."""
    for sink in _sinks:
        try:
            sink(record)
        except Exception:  # a broken metrics store must never fail the request it measures
            logger.exception("request sink %r failed", sink)
