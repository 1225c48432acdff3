"""The ``@observed`` decorator for functions-framework HTTP handlers, and uniform JSON errors.

Per request it makes the caller's trace current, turns any handler outcome (value, werkzeug
``HTTPException`` or unexpected exception) into a response, writes one request log record in Cloud
Logging's ``httpRequest`` format and hands a :class:`RequestRecord` to every request sink.

The request log line is sampled (:mod:`shared.obs.sampling`): always written for a response that
is not 2xx and for a slow request, for every request while the function's recent error rate is
high, and otherwise for a random fraction of successes. Request records are not sampled: every
request reaches every sink. Environment, read per request (memoised, never at import):

``REQUEST_LOG_SAMPLE_RATE``
    Fraction of ordinary successes logged, 0..1 (default 0.01; 1 logs every request, 0 none).
``REQUEST_LOG_SLOW_MS``
    Latency in ms from which a request is always logged (default 1000).
``REQUEST_LOG_ERROR_BURST``
    Error rate (status >= 400) over the last 200 requests within 60 s from which every request
    is logged until it falls back (default 0.01).

An invalid value is warned about once and the default is used.
"""

from __future__ import annotations

import functools
import gc
import importlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TypeAlias, cast

import flask
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.utils import get_current_url

from shared.obs.environ import env_memo
from shared.obs.logging import JSON_FIELDS, MASKED_FLAG, setup_logging
from shared.obs.logging import _function as _current_function
from shared.obs.pii import CACHE_MAX_CHARS, mask, mask_value
from shared.obs.requests import (
    INJECTED_HEADER,
    RequestRecord,
    RequestSink,
    add_request_sink,
    publish_request,
    remove_request_sink,
    request_sinks,
)
from shared.obs.sampling import RequestLogSampler, SamplingConfig
from shared.obs.sampling import config_from_env as sampling_config_from_env
from shared.obs.trace import TraceContext, current_trace
from shared.obs.trace import _current as _current_trace

Handler: TypeAlias = Callable[[flask.Request], ResponseReturnValue]

TRACE_ID_HEADER = "X-Trace-Id"
LOCAL_METRICS_ENV = "LOCAL_METRICS_DB"
LOCAL_STORE_MODULE = "shared.slo.local_store"

_JSON_CONTENT_TYPE = "application/json"
_INJECTED_KEY = INJECTED_HEADER.lower()
_TRACE_ID_KEY = TRACE_ID_HEADER.lower()
# DefaultJSONProvider.response's two layouts.
_COMPACT: dict[str, object] = {"separators": (",", ":")}
_PRETTY: dict[str, object] = {"indent": 2}

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


@env_memo
def _request_settings() -> tuple[SamplingConfig, str | None]:
    """Per request, from the environment: the log sampling settings and ``LOCAL_METRICS_DB``
    (one memo, so one comparison of the environment per request)."""
    return sampling_config_from_env(), os.environ.get(LOCAL_METRICS_ENV) or None


_local_sink_lock = threading.Lock()
# The LOCAL_METRICS_DB value last acted on and the sink it gave (None: unset, or it failed).
_local_sink_state: tuple[str | None, RequestSink | None] = (None, None)


def _sync_local_sink(value: str | None) -> None:
    """Feed the local SLO store while ``LOCAL_METRICS_DB`` (``value``) is set; checked per
    request, cheaply.

    The module is imported on the first request that sees the variable, never at import time. A
    failed import is warned about once per value of the variable.
    """
    global _local_sink_state
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


def _make_response(rv: ResponseReturnValue, trace_id: str) -> tuple[flask.Response, bool]:
    """``flask.make_response(rv)`` with the trace header added, and whether it marks an injection.

    The common ``(dict, int, dict)`` is built directly: what Flask's ``make_response`` does with
    it (JSON body from the app's provider, then status, then headers), with all headers given to
    the response at once instead of set one by one after it is made. Headers that would replace
    one already there (a content type, a name given twice) take Flask's own path.
    """
    if type(rv) is tuple and len(rv) == 3:
        body, status, headers = rv
        if type(body) is dict and type(status) is int and type(headers) is dict:
            # The app itself, not the context-local proxy that resolves it on every attribute.
            app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
            provider = app.json
            direct = _direct_headers(headers, trace_id)
            if direct is not None and type(provider) is DefaultJSONProvider:
                header_list, injected = direct
                compact = provider.compact
                pretty = compact is False or (compact is None and app.debug)
                encoder = _json_encoder(
                    provider.default, provider.ensure_ascii, provider.sort_keys, pretty
                )
                data = encoder.encode(body)
                response = app.response_class(f"{data}\n", status, header_list)
                return cast(flask.Response, response), injected
    return _with_trace(flask.make_response(rv), trace_id)


@functools.lru_cache(maxsize=8)
def _json_encoder(
    default: Callable[[object], object], ensure_ascii: bool, sort_keys: bool, pretty: bool
) -> json.JSONEncoder:
    """The encoder ``DefaultJSONProvider.dumps(body, **layout)`` makes on every call.

    ``json.dumps`` with any keyword builds a new ``JSONEncoder`` each time (a few µs of Python);
    one encoder per provider setting gives the same text, as an encoder keeps no state between
    calls.
    """
    return json.JSONEncoder(
        default=default,
        ensure_ascii=ensure_ascii,
        sort_keys=sort_keys,
        **(_PRETTY if pretty else _COMPACT),  # type: ignore[arg-type]
    )


def _direct_headers(
    headers: dict[str, str], trace_id: str
) -> tuple[list[tuple[str, str]], bool] | None:
    """The JSON response's header list and the injected flag; None if a header replaces another."""
    header_list = [("Content-Type", _JSON_CONTENT_TYPE)]
    seen = {"content-type", "content-length", _TRACE_ID_KEY}
    injected = False
    for name, value in headers.items():
        key = name.lower()
        if key in seen:
            return None
        seen.add(key)
        header_list.append((name, value))
        if key == _INJECTED_KEY:
            injected = _is_true(value)
    header_list.append((TRACE_ID_HEADER, trace_id))
    return header_list, injected


def _with_trace(response: flask.Response, trace_id: str) -> tuple[flask.Response, bool]:
    """``response`` with the trace header set, and whether it marks an injection."""
    response.headers[TRACE_ID_HEADER] = trace_id
    # headers.get(INJECTED_HEADER, ""), without raising and catching a KeyError when the header is
    # absent (as it is on almost every response).
    marks = response.headers.getlist(INJECTED_HEADER)
    return response, bool(marks) and _is_true(marks[0])


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


def _internal_error_response(trace: TraceContext) -> flask.Response:
    body, status = json_error(500, "internal", "internal error", trace_id=trace.trace_id)
    return flask.make_response(body, status)


def _client_ip(request: flask.Request) -> str:
    # Behind Google's front end the client is the first X-Forwarded-For hop.
    forwarded = request.headers.get("X-Forwarded-For", "")
    first = forwarded.split(",", 1)[0].strip()
    return first or request.remote_addr or ""


@functools.lru_cache(maxsize=1024)
def _masked_url(scheme: str, host: str, root_path: str, path: str, query_string: bytes) -> str:
    return mask(get_current_url(scheme, host, root_path, path, query_string))


def _request_url(request: flask.Request) -> str:
    """``mask(request.url)``, memoised by the parts werkzeug builds ``request.url`` from.

    The same function of the same parts as werkzeug's ``Request.url``; a URL already computed
    for this request (or a long one, not worth keeping) is simply masked.
    """
    query = request.query_string
    path = request.path
    if "url" in request.__dict__ or len(query) + len(path) > CACHE_MAX_CHARS:
        return mask(request.url)
    return _masked_url(request.scheme, request.host, request.root_path, path, query)


def _severity(status: int, injected: bool) -> int:
    if injected or status < 400:
        return logging.INFO
    return logging.ERROR if status >= 500 else logging.WARNING


def _masked(value: object) -> object:
    return mask(value) if type(value) is str else mask_value(value)


def _log_request(
    function: str,
    request: flask.Request,
    response: flask.Response,
    latency_s: float,
    injected: bool,
) -> None:
    """Log one request, masked here rather than by :class:`PiiFilter`, field by field.

    What the filter would do to this record, done while building it: the formatted message as a
    whole and every string that comes from the request (method, URL, user agent, client address,
    protocol, referrer) and the function name go through :func:`mask` (memoised, so a repeated user
    agent or URL costs a dict look-up). Left alone are values this code makes itself: status,
    latency, sizes, flags. No key of this record names a secret, so none would be redacted. The
    record is then flagged as masked, and the filter passes it on as it is.
    """
    status = response.status_code
    level = _severity(status, injected)
    if not request_logger.isEnabledFor(level):
        return
    method = request.method
    latency_ms = latency_s * 1000.0
    headers = request.headers
    http_request: dict[str, object] = {
        "requestMethod": mask(method),
        "requestUrl": _request_url(request),
        "status": status,
        "latency": f"{latency_s:.6f}s",
        # What request.user_agent.string holds, without parsing a UserAgent object.
        "userAgent": mask(headers.get("User-Agent", "")),
        "remoteIp": mask(_client_ip(request)),
        "protocol": _masked(request.environ.get("SERVER_PROTOCOL", "")),
    }
    if request.content_length is not None:
        http_request["requestSize"] = str(request.content_length)
    if response.content_length is not None:
        http_request["responseSize"] = str(response.content_length)
    referrer = request.referrer
    if referrer:
        http_request["referer"] = mask(referrer)
    message = "%s %s %d %.1fms%s" % (  # noqa: UP031 -- the message logging would have formatted
        method,
        request.path,
        status,
        latency_ms,
        " (injected)" if injected else "",
    )
    request_logger.log(
        level,
        mask(message),
        extra={
            JSON_FIELDS: {
                "httpRequest": http_request,
                "function": mask(function),
                "injected": injected,
                "latency_ms": round(latency_ms, 3),
            },
            MASKED_FLAG: True,
        },
    )


_startup_frozen = False


def _freeze_startup_objects() -> None:
    """``gc.freeze()`` once per process, at its first observed request.

    Everything alive by then (modules, the Flask app, the server) lives as long as the process.
    Left to the collector, the first full collection under load walks all of it (~15-20 ms here),
    holding the GIL while every request thread waits: a one-off latency spike of that size. Frozen
    objects are never scanned again; garbage made from then on is collected as usual.
    """
    global _startup_frozen
    if not _startup_frozen:
        _startup_frozen = True
        gc.freeze()


def observed(function: str) -> Callable[[Handler], Handler]:
    """Decorate a functions-framework HTTP handler with tracing, request logging and sinks."""

    def decorate(handler: Handler) -> Handler:
        setup_done = threading.Event()
        sampler = RequestLogSampler()

        @functools.wraps(handler)
        def wrapper(request: flask.Request) -> flask.Response:
            if not setup_done.is_set():
                setup_logging(function=function)
                _freeze_startup_objects()
                setup_done.set()
            sampling, metrics_db = _request_settings()
            _sync_local_sink(metrics_db)
            # The trace headers straight from the WSGI environ: no headers view, no case folding.
            trace = TraceContext.from_environ(request.environ)
            arrived = time.time()
            started = time.perf_counter()
            # What ``with use_trace(trace), use_function(function)`` does, without two generator
            # context managers per request.
            trace_token = _current_trace.set(trace)
            function_token = _current_function.set(function)
            try:
                try:
                    response, injected = _make_response(handler(request), trace.trace_id)
                except HTTPException as exc:
                    response, injected = _with_trace(_http_error_response(exc), trace.trace_id)
                except Exception:
                    logger.exception("unhandled exception in %s", function)
                    response, injected = _with_trace(
                        _internal_error_response(trace), trace.trace_id
                    )
                latency_s = time.perf_counter() - started
                status = response.status_code
                if sampler.should_log(status, latency_s * 1000.0, sampling):
                    _log_request(function, request, response, latency_s, injected)
                if request_sinks():  # publish_request() to no sinks is a no-op: skip the record
                    publish_request(
                        RequestRecord(
                            function=function,
                            method=request.method,
                            path=mask(request.path),
                            status=status,
                            latency_ms=latency_s * 1000.0,
                            trace_id=trace.trace_id,
                            injected=injected,
                            at=arrived,
                        )
                    )
            finally:
                _current_function.reset(function_token)
                _current_trace.reset(trace_token)
            return response

        return wrapper

    return decorate
