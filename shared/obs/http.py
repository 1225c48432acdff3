"""The ``@observed`` decorator for functions-framework HTTP handlers, and uniform JSON errors.

Per request it makes the caller's trace current, turns any handler outcome (value, werkzeug
``HTTPException`` or unexpected exception) into a response, writes one request log record in Cloud
Logging's ``httpRequest`` format and hands a :class:`RequestRecord` to every request sink.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TypeAlias

import flask
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shared.obs.logging import JSON_FIELDS, setup_logging, use_function
from shared.obs.pii import mask
from shared.obs.requests import (
    INJECTED_HEADER,
    RequestRecord,
    RequestSink,
    add_request_sink,
    publish_request,
    remove_request_sink,
    request_sinks,
)
from shared.obs.trace import TraceContext, current_trace, use_trace

Handler: TypeAlias = Callable[[flask.Request], ResponseReturnValue]

TRACE_ID_HEADER = "X-Trace-Id"
LOCAL_METRICS_ENV = "LOCAL_METRICS_DB"
LOCAL_STORE_MODULE = "shared.slo.local_store"

logger = logging.getLogger("shared.obs.http")
request_logger = logging.getLogger("shared.obs.request")


def json_error(
    status: int, error: str, message: str, **details: object
) -> tuple[dict[str, object], int]:
    """A uniform JSON error body and its status; adds the current ``trace_id`` when there is one.

    ``error`` is a stable machine-readable code (``invalid_parameter``), ``message`` is for humans,
    ``details`` add context (``parameter="p", allowed="0.0..1.0", got="abc"``).
    """
    body: dict[str, object] = {"error": error, "message": message, **details}
    trace = current_trace()
    if trace is not None:
        body.setdefault("trace_id", trace.trace_id)
    return body, status


_local_sink_lock = threading.Lock()
# The LOCAL_METRICS_DB value last acted on and the sink it gave (None: unset, or it failed).
_local_sink_state: tuple[str | None, RequestSink | None] = (None, None)


def _sync_local_sink() -> None:
    """Feed the local SLO store while ``LOCAL_METRICS_DB`` is set (checked per request, cheaply).

    The module is imported on the first request that sees the variable, never at import time. A
    failed import is warned about once per value of the variable.
    """
    global _local_sink_state
    value = os.environ.get(LOCAL_METRICS_ENV) or None
    seen, sink = _local_sink_state
    if value == seen and (sink is None or sink in request_sinks()):
        return
    with _local_sink_lock:
        seen, sink = _local_sink_state
        if value == seen and (sink is None or sink in request_sinks()):
            return
        if sink is not None and value != seen:
            remove_request_sink(sink)
        if value is not None and value == seen and sink is not None:
            add_request_sink(sink)  # removed by someone (e.g. a test's use_request_sinks)
            return
        _local_sink_state = (value, _load_local_sink() if value else None)
        if _local_sink_state[1] is not None:
            add_request_sink(_local_sink_state[1])


def _load_local_sink() -> RequestSink | None:
    try:
        store = importlib.import_module(LOCAL_STORE_MODULE)
        sink: RequestSink | None = store.sink_from_env()
    except Exception:  # metrics are optional: serving must go on without them
        logger.warning(
            "%s is set but %s.sink_from_env() failed; requests will not be recorded locally",
            LOCAL_METRICS_ENV,
            LOCAL_STORE_MODULE,
            exc_info=True,
        )
        return None
    return sink


def reset_local_sink() -> None:
    """Forget the local sink decision, so the next request looks again (for tests)."""
    global _local_sink_state
    with _local_sink_lock:
        sink = _local_sink_state[1]
        if sink is not None:
            remove_request_sink(sink)
        _local_sink_state = (None, None)


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"


def _http_error_response(exc: HTTPException) -> flask.Response:
    if exc.response is not None:  # abort(response): the handler chose the exact response
        return exc.response  # type: ignore[return-value]
    code = exc.code or 500
    details: dict[str, object] = {"code": code}
    allowed = getattr(exc, "valid_methods", None)
    if allowed:
        details["allowed"] = list(allowed)
    body, status = json_error(code, _snake(exc.name), exc.description or exc.name, **details)
    response = flask.make_response(body, status)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":  # werkzeug's default is HTML; the body here is JSON
            response.headers[name] = value
    return response


def _internal_error_response(trace: TraceContext) -> flask.Response:
    body, status = json_error(500, "internal", "internal error", trace_id=trace.trace_id)
    return flask.make_response(body, status)


def _client_ip(request: flask.Request) -> str:
    # Behind Google's front end the client is the first X-Forwarded-For hop.
    forwarded = request.headers.get("X-Forwarded-For", "")
    first = forwarded.split(",", 1)[0].strip()
    return first or request.remote_addr or ""


def _severity(status: int, injected: bool) -> int:
    if injected or status < 400:
        return logging.INFO
    return logging.ERROR if status >= 500 else logging.WARNING


def _log_request(
    function: str,
    request: flask.Request,
    response: flask.Response,
    latency_s: float,
    injected: bool,
) -> None:
    level = _severity(response.status_code, injected)
    if not request_logger.isEnabledFor(level):
        return
    http_request: dict[str, object] = {
        "requestMethod": request.method,
        "requestUrl": mask(request.url),
        "status": response.status_code,
        "latency": f"{latency_s:.6f}s",
        "userAgent": mask(request.user_agent.string or ""),
        "remoteIp": _client_ip(request),
        "protocol": request.environ.get("SERVER_PROTOCOL", ""),
    }
    if request.content_length is not None:
        http_request["requestSize"] = str(request.content_length)
    if response.content_length is not None:
        http_request["responseSize"] = str(response.content_length)
    if request.referrer:
        http_request["referer"] = mask(request.referrer)
    request_logger.log(
        level,
        "%s %s %d %.1fms%s",
        request.method,
        request.path,
        response.status_code,
        latency_s * 1000.0,
        " (injected)" if injected else "",
        extra={
            JSON_FIELDS: {
                "httpRequest": http_request,
                "function": function,
                "injected": injected,
                "latency_ms": round(latency_s * 1000.0, 3),
            }
        },
    )


def observed(function: str) -> Callable[[Handler], Handler]:
    """Decorate a functions-framework HTTP handler with tracing, request logging and sinks."""

    def decorate(handler: Handler) -> Handler:
        setup_done = threading.Event()

        @functools.wraps(handler)
        def wrapper(request: flask.Request) -> flask.Response:
            if not setup_done.is_set():
                setup_logging(function=function)
                setup_done.set()
            _sync_local_sink()
            trace = TraceContext.from_headers(request.headers)
            arrived = time.time()
            started = time.perf_counter()
            with use_trace(trace), use_function(function):
                try:
                    response = flask.make_response(handler(request))
                except HTTPException as exc:
                    response = _http_error_response(exc)
                except Exception:
                    logger.exception("unhandled exception in %s", function)
                    response = _internal_error_response(trace)
                latency_s = time.perf_counter() - started
                response.headers[TRACE_ID_HEADER] = trace.trace_id
                injected = response.headers.get(INJECTED_HEADER, "").strip().lower() == "true"
                _log_request(function, request, response, latency_s, injected)
                publish_request(
                    RequestRecord(
                        function=function,
                        method=request.method,
                        path=mask(request.path),
                        status=response.status_code,
                        latency_ms=latency_s * 1000.0,
                        trace_id=trace.trace_id,
                        injected=injected,
                        at=arrived,
                    )
                )
            return response

        return wrapper

    return decorate
