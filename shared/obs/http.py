"""The ``@observed`` decorator for functions-framework HTTP handlers, and uniform JSON errors.

Per request it makes the caller's trace current, turns any handler outcome (value, werkzeug
``HTTPException`` or unexpected exception) into a response carrying the ``X-Trace-Id`` header,
writes a request log line in Cloud Logging's ``httpRequest`` format (sampled, see
:mod:`shared.obs.sampling`) and hands a :class:`RequestRecord` to every request sink (not sampled).
The log line is masked like every other record, by the logging filter.

Settings are read once per instance, on the first request (:mod:`shared.obs.instance`).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeAlias

import flask
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shared.obs.instance import instance, request_settings
from shared.obs.logging import JSON_FIELDS, use_function
from shared.obs.pii import mask
from shared.obs.requests import (
    COHORT_HEADER,
    INJECTED_HEADER,
    RequestRecord,
    publish_request,
    request_sinks,
)
from shared.obs.telemetry import current_span_ids
from shared.obs.trace import (
    CLOUD_TRACE_HEADER,
    TRACEPARENT,
    TraceContext,
    current_trace,
    extract_environ,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span

Handler: TypeAlias = Callable[[flask.Request], ResponseReturnValue]

TRACE_ID_HEADER = "X-Trace-Id"
# The WSGI environ keys (PEP 3333) of the headers the installed propagators read (W3C and
# Google's, see shared.obs.telemetry); tests/bench/test_request_path.py fails if they change.
_PROPAGATION_KEYS = tuple(
    "HTTP_" + name.upper().replace("-", "_") for name in (TRACEPARENT, CLOUD_TRACE_HEADER)
)

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


def _snake(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"


def _is_true(value: object) -> bool:
    return type(value) is str and value.strip().lower() == "true"


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


def _internal_error_response() -> flask.Response:
    body, status = json_error(500, "internal", "internal error")
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
    """Log one request; masked, like any record, by the handler's filter."""
    status = response.status_code
    level = _severity(status, injected)
    if not request_logger.isEnabledFor(level):
        return
    latency_ms = latency_s * 1000.0
    http_request: dict[str, object] = {
        "requestMethod": request.method,
        "requestUrl": request.url,
        "status": status,
        "latency": f"{latency_s:.6f}s",
        "userAgent": request.headers.get("User-Agent", ""),
        "remoteIp": _client_ip(request),
        "protocol": request.environ.get("SERVER_PROTOCOL", ""),
    }
    if request.content_length is not None:
        http_request["requestSize"] = str(request.content_length)
    if response.content_length is not None:
        http_request["responseSize"] = str(response.content_length)
    if request.referrer:
        http_request["referer"] = request.referrer
    request_logger.log(
        level,
        "%s %s %d %.1fms%s",
        request.method,
        request.path,
        status,
        latency_ms,
        " (injected)" if injected else "",
        extra={
            JSON_FIELDS: {
                "httpRequest": http_request,
                "function": function,
                "injected": injected,
                "latency_ms": round(latency_ms, 3),
            }
        },
    )


def _parent_context(environ: dict[str, object]) -> Context | None:
    """The caller's trace context; None (the current one) when no propagation header came.

    Most requests carry none, and extracting from nothing still costs ~4% of a request: the
    Cloud Trace propagator, missing its header, scans every environ key for another spelling.
    """
    if any(key in environ for key in _PROPAGATION_KEYS):
        return extract_environ(environ)
    return None


def _finish_span(span: Span, status: int, injected: bool, cohort: str) -> None:
    if not span.is_recording():  # an unsampled span keeps nothing (OpenTelemetry's own idiom)
        return
    span.set_attribute("http.response.status_code", status)
    if injected:
        span.set_attribute("chaos.injected", True)
    if cohort:
        span.set_attribute("rollout.cohort", cohort)
    # Server spans: a 5xx is an error of ours; a 4xx is the caller's (semantic conventions).
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, "injected" if injected else f"HTTP {status}"))


def _respond(handler: Handler, request: flask.Request, function: str) -> flask.Response:
    """The handler's outcome as a response: its value, an HTTP error as JSON, or a JSON 500."""
    try:
        return flask.make_response(handler(request))
    except HTTPException as exc:
        return _http_error_response(exc)
    except Exception:
        logger.exception("unhandled exception in %s", function)
        return _internal_error_response()


def observed(function: str) -> Callable[[Handler], Handler]:
    """Decorate a functions-framework HTTP handler with tracing, request logging and sinks."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        def wrapper(request: flask.Request) -> flask.Response:
            state = instance(function)
            arrived = time.time()
            started = time.perf_counter()
            with (
                state.tracer.start_as_current_span(
                    f"{request.method} {function}",
                    context=_parent_context(request.environ),
                    kind=state.server_kind,
                    attributes={
                        "http.request.method": request.method,
                        "http.route": function,
                        "url.path": mask(request.path),
                        "faas.name": function,
                    },
                    record_exception=False,
                    set_status_on_exception=False,
                ) as span,
                use_function(function),
            ):
                # The span's ids as the SDK made them (TraceContext would re-validate them);
                # a fresh id only when the SDK is disabled and the span is invalid.
                ids = current_span_ids(span)
                trace_id = ids[0] if ids is not None else TraceContext.fresh().trace_id
                response = _respond(handler, request, function)
                response.headers[TRACE_ID_HEADER] = trace_id
                latency_s = time.perf_counter() - started
                status = response.status_code
                # getlist, not get: werkzeug's get raises and catches a BadRequestKeyError for
                # a missing header (as it is on almost every response), ~10% of a request.
                marks = response.headers.getlist(INJECTED_HEADER)
                injected = bool(marks) and _is_true(marks[0])
                cohorts = response.headers.getlist(COHORT_HEADER)
                cohort = cohorts[0] if cohorts else ""
                _finish_span(span, status, injected, cohort)
                state.durations.record(
                    latency_s,
                    {
                        "function": function,
                        "http.request.method": request.method,
                        "http.response.status_code": status,
                        "chaos.injected": injected,
                        "cohort": cohort,
                    },
                )
                sampling = request_settings().sampling
                if state.sampler.should_log(status, latency_s * 1000.0, sampling):
                    _log_request(function, request, response, latency_s, injected)
                if request_sinks():  # publish_request() to no sinks is a no-op: skip the record
                    publish_request(
                        RequestRecord(
                            function=function,
                            method=request.method,
                            path=mask(request.path),
                            status=status,
                            latency_ms=latency_s * 1000.0,
                            trace_id=trace_id,
                            injected=injected,
                            at=arrived,
                            cohort=cohort,
                        )
                    )
            return response

        return wrapper

    return decorate
