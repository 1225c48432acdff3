"""Observability for every function: structured logs, PII masking, traces, request records.

``observed`` and ``json_error`` live in :mod:`shared.obs.http`, which imports flask; they and the
latency percentiles are loaded on first access so that ``import shared.obs`` stays cheap for code
that only logs.
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
    from shared.obs.percentiles import LatencySummary, LatencyWindow, percentile, summarize

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

# name -> module that defines it, imported on first access.
_LAZY = {
    "observed": "shared.obs.http",
    "json_error": "shared.obs.http",
    "LatencySummary": "shared.obs.percentiles",
    "LatencyWindow": "shared.obs.percentiles",
    "percentile": "shared.obs.percentiles",
    "summarize": "shared.obs.percentiles",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
