"""Observability for every function: structured logs, PII masking, traces, request records.

``observed`` and ``json_error`` live in :mod:`shared.obs.http`, which imports flask; they are loaded
on first access so that ``import shared.obs`` stays cheap for code that only logs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shared.obs.logging import (
    CloudLoggingFormatter,
    PiiFilter,
    setup_logging,
    teardown_logging,
    use_function,
)
from shared.obs.percentiles import LatencySummary, LatencyWindow, percentile, summarize
from shared.obs.pii import mask, mask_value
from shared.obs.requests import (
    INJECTED_HEADER,
    RequestRecord,
    RequestSink,
    add_request_sink,
    publish_request,
    remove_request_sink,
    request_sinks,
    use_request_sinks,
)
from shared.obs.trace import ObsError, TraceContext, current_trace, use_trace

if TYPE_CHECKING:
    from shared.obs.http import json_error, observed

__all__ = [
    "INJECTED_HEADER",
    "CloudLoggingFormatter",
    "LatencySummary",
    "LatencyWindow",
    "ObsError",
    "PiiFilter",
    "RequestRecord",
    "RequestSink",
    "TraceContext",
    "add_request_sink",
    "current_trace",
    "json_error",
    "mask",
    "mask_value",
    "observed",
    "percentile",
    "publish_request",
    "remove_request_sink",
    "request_sinks",
    "setup_logging",
    "summarize",
    "teardown_logging",
    "use_function",
    "use_request_sinks",
    "use_trace",
]

_LAZY = frozenset({"observed", "json_error"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from shared.obs import http

        return getattr(http, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
