"""Observability for every function: structured logs, PII masking, traces, request records.

Names are imported from their module on first use (:mod:`shared.lazy`), so ``import shared.obs``
stays cheap for code that only logs: ``observed`` and ``json_error`` bring in flask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:
    from shared.obs.batching import BatchingSink, BatchWriter, SinkStats
    from shared.obs.errors import ObsError
    from shared.obs.http import json_error, observed
    from shared.obs.logging import (
        CloudLoggingFormatter,
        PiiFilter,
        mask_record,
        setup_logging,
        teardown_logging,
        use_function,
    )
    from shared.obs.percentiles import LatencySummary, LatencyWindow, percentile, summarize
    from shared.obs.pii import mask, mask_value
    from shared.obs.requests import (
        COHORT_HEADER,
        INJECTED_HEADER,
        RequestRecord,
        RequestSink,
        add_request_sink,
        publish_request,
        remove_request_sink,
        request_sinks,
        use_request_sinks,
    )
    from shared.obs.trace import TraceContext, current_trace, use_trace

__all__ = [
    "COHORT_HEADER",
    "INJECTED_HEADER",
    "BatchWriter",
    "BatchingSink",
    "CloudLoggingFormatter",
    "LatencySummary",
    "LatencyWindow",
    "ObsError",
    "PiiFilter",
    "RequestRecord",
    "RequestSink",
    "SinkStats",
    "TraceContext",
    "add_request_sink",
    "current_trace",
    "json_error",
    "mask",
    "mask_record",
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

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "BatchWriter": "batching",
        "BatchingSink": "batching",
        "SinkStats": "batching",
        "ObsError": "errors",
        "json_error": "http",
        "observed": "http",
        "CloudLoggingFormatter": "logging",
        "PiiFilter": "logging",
        "mask_record": "logging",
        "setup_logging": "logging",
        "teardown_logging": "logging",
        "use_function": "logging",
        "LatencySummary": "percentiles",
        "LatencyWindow": "percentiles",
        "percentile": "percentiles",
        "summarize": "percentiles",
        "mask": "pii",
        "mask_value": "pii",
        "COHORT_HEADER": "requests",
        "INJECTED_HEADER": "requests",
        "RequestRecord": "requests",
        "RequestSink": "requests",
        "add_request_sink": "requests",
        "publish_request": "requests",
        "remove_request_sink": "requests",
        "request_sinks": "requests",
        "use_request_sinks": "requests",
        "TraceContext": "trace",
        "current_trace": "trace",
        "use_trace": "trace",
    },
)
