"""Request handling for both chaos functions: a Flask request in, a response value out.

Each ``serve_*`` function parses and validates the request, calls the pure code of this package
and returns ``(json, status[, headers])`` or a :class:`flask.Response`. Every :class:`ChaosError`
becomes a uniform JSON error through :func:`error_response`; anything else is left to
``@observed`` (a JSON 500 with the trace id, never a stack trace).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, TypeAlias
from urllib.parse import quote

import flask
from flask.typing import ResponseReturnValue

from shared.chaos.auth import Principal, authorize
from shared.chaos.config import ChaosSettings, settings_from_env
from shared.chaos.delay import RandomSource, inject_delay, random_source
from shared.chaos.errors import (
    ChaosDisabled,
    ChaosError,
    InvalidParameter,
    MethodNotAllowed,
    NotFound,
    UnknownUpstream,
)
from shared.chaos.params import (
    DelayParams,
    Mode,
    parse_delay_params,
    parse_experiment_spec,
    parse_list_limit,
    parse_proxy_params,
)
from shared.chaos.runtime import Runtime, runtime
from shared.obs import json_error
from shared.obs.environ import env_memo
from shared.obs.requests import INJECTED_HEADER
from shared.obs.trace import current_trace

if TYPE_CHECKING:
    from shared.chaos.experiments import Experiment

EXPERIMENT_HEADER: Final = "X-Chaos-Experiment"
"""Names the experiment that shaped a forwarded response."""
MAX_BODY_BYTES: Final = 64 * 1024
"""Largest JSON body the chaos endpoints read (forwarded bodies are not limited here)."""
FUNCTION_PREFIX: Final = "/chaos_proxy"
EXPERIMENTS: Final = "_experiments"
ROUTES: Final = (
    "/chaos_proxy?mode=ok|drop|slow|error",
    "/chaos_proxy/_experiments",
    "/chaos_proxy/_experiments/<id>",
    "/chaos_proxy/<upstream>/<path>",
)
DROP_CLOSED_STATUS: Final = 444
"""Logged (never sent) status of a drop that closed the connection (nginx's convention)."""
DROP_CLIENT_GONE_STATUS: Final = 499
"""Logged (never sent) status of a drop whose client gave up first (nginx's convention)."""
DROP_FALLBACK_STATUS: Final = 504
"""Sent after the hold when the server exposes no socket to close."""

Reply: TypeAlias = ResponseReturnValue
Headers: TypeAlias = dict[str, str]
_NO_STORE: Final = {"Cache-Control": "no-store"}

current_settings = env_memo(settings_from_env)
"""``settings_from_env()``, parsed again only when the environment changed since the last call
(each request still sees the environment as it is now; see :mod:`shared.obs.environ`)."""

# The default source makes a new random.Random per call, seeded from os.urandom (tens of µs).
# Unseeded draws need no generator of their own: one shared generator gives the same distribution
# (its methods are safe to call from several threads). Reseeded in a forked child, like the
# random module's own generator, so forked workers never share a sequence.
_UNSEEDED: Final = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_UNSEEDED.seed)


def rng_for(rt: Runtime, seed: int | None) -> RandomSource:
    """The generator for one request: ``rt.random_source(seed)``, except that with the default
    source an unseeded request draws from the shared generator."""
    if seed is None and rt.random_source is random_source:
        return _UNSEEDED
    return rt.random_source(seed)


def error_response(exc: ChaosError) -> Reply:
    """The uniform JSON error for ``exc`` (status, ``error`` code, message, details)."""
    body, status = json_error(exc.status_code, exc.code, str(exc), **exc.details())
    return body, status, dict(_NO_STORE)


def trace_id() -> str:
    """The current request's trace id ('' outside ``@observed``)."""
    trace = current_trace()
    return trace.trace_id if trace is not None else ""


def request_values(request: flask.Request, *, with_body: bool) -> dict[str, object]:
    """Query parameters, overlaid by the fields of a JSON object body when ``with_body``.

    A parameter repeated in the query, or a body that is not a JSON object, is an
    :class:`InvalidParameter`.
    """
    values: dict[str, object] = {}
    for name, given in request.args.lists():
        if len(given) > 1:
            raise InvalidParameter(
                name, f"{name} is given {len(given)} times", allowed="at most once", got=given
            )
        values[name] = given[0]
    if with_body:
        body = json_body(request)
        if body is not None:
            values.update(body)
    return values


def json_body(request: flask.Request) -> dict[str, object] | None:
    """The request's JSON object body; None when the body is empty."""
    allowed = f"a JSON object of at most {MAX_BODY_BYTES} bytes"
    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        raise InvalidParameter("body", "body is too large", allowed=allowed, got=f"{length} bytes")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise InvalidParameter("body", "body is too large", allowed=allowed, got="more bytes")
    if not raw.strip():
        return None
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidParameter(
            "body", "body must be a JSON object", allowed=allowed, got=raw[:80].decode("latin-1")
        )
    return parsed


def admit(
    request: flask.Request, settings: ChaosSettings, rt: Runtime, *, injects: bool
) -> Principal:
    """Authenticate the caller, then, for requests that would inject faults, check the switch.

    Authentication comes first so an anonymous caller learns nothing about the configuration.
    """
    # Only the firebase mode reads the header (authorize ignores it otherwise).
    authorization = request.headers.get("Authorization") if settings.auth == "firebase" else None
    principal = authorize(settings.auth, authorization, rt.verifier)
    if injects and not settings.enabled:
        raise ChaosDisabled(settings.disabled_reason)
    return principal


def allow_methods(request: flask.Request, *allowed: str) -> None:
    if request.method not in allowed:
        raise MethodNotAllowed(request.method, allowed)


# -- chaos_delay ----------------------------------------------------------------------------------

_QUERY_MEMO_MAX: Final = 256
_QUERY_MEMO_MAX_CHARS: Final = 256
# (raw query string, max_delay_ms) -> its validated parameters. Experiments and load tests repeat
# the same few queries, so a hit saves parsing the query string and validating it: about a
# quarter of this function's own work per request. Invalid queries raise and are never stored.
_query_memo: dict[tuple[str, int], DelayParams] = {}


def delay_params(request: flask.Request, max_delay_ms: int) -> DelayParams:
    """The request's validated parameters (query, or query and JSON body on POST).

    A GET's result is remembered by its raw query string: the same string always parses and
    validates the same way under the same cap.
    """
    if request.method != "GET":
        values = request_values(request, with_body=True)
        return parse_delay_params(values, max_delay_ms=max_delay_ms)
    query = request.environ.get("QUERY_STRING", "")
    key = (query, max_delay_ms) if type(query) is str else None
    if key is not None:
        hit = _query_memo.get(key)
        if hit is not None:
            return hit
    params = parse_delay_params(request_values(request, with_body=False), max_delay_ms=max_delay_ms)
    if key is not None and len(query) <= _QUERY_MEMO_MAX_CHARS:
        if len(_query_memo) >= _QUERY_MEMO_MAX:
            _query_memo.clear()  # a bounded memo; the common queries come straight back
        _query_memo[key] = params
    return params


def serve_delay(request: flask.Request) -> Reply:
    """``GET|POST /chaos_delay?p=&d=&status=&seed=&retry_after=``."""
    try:
        allow_methods(request, "GET", "POST")
        settings = current_settings()
        rt = runtime()
        admit(request, settings, rt, injects=True)
        params = delay_params(request, settings.max_delay_ms)
    except ChaosError as exc:
        return error_response(exc)
    outcome = inject_delay(params, rng=rng_for(rt, params.seed), clock=rt.clock)
    body: dict[str, object] = {
        "ok": outcome.ok,
        "status": outcome.status,
        "injected_status": outcome.injected_status,
        "delay_ms": round(outcome.delay_ms, 3),
        "planned_delay_ms": round(outcome.planned_delay_ms, 3),
        "p": params.p,
        "d": params.d_ms,
        "seed": params.seed,
        "trace_id": trace_id(),
    }
    headers = dict(_NO_STORE)
    if not outcome.ok:
        body["error"] = "injected_error"
        body["message"] = f"chaos_delay injected a {outcome.status} (probability {params.p:g})"
        headers[INJECTED_HEADER] = "true"
        if outcome.retry_after_s is not None:
            headers["Retry-After"] = str(outcome.retry_after_s)
    return body, outcome.status, headers


# -- chaos_proxy ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """Where a ``chaos_proxy`` request goes. ``rest`` is the raw (percent-encoded) path after the
    upstream name, ``experiment_id`` the last segment of an experiment URL."""

    kind: Literal["mode", "experiments", "experiment", "forward"]
    upstream: str = ""
    rest: str = ""
    experiment_id: str = ""


def raw_path(environ: Mapping[str, object]) -> str:
    """The request path exactly as the client encoded it (``%2F`` stays ``%2F``)."""
    for key in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(key)
        if isinstance(raw, str) and raw:
            if "://" in raw.split("?", 1)[0]:  # absolute-form request target
                raw = "/" + raw.split("://", 1)[1].partition("/")[2]
            return raw.split("?", 1)[0] or "/"
    path_info = environ.get("PATH_INFO")
    text = path_info if isinstance(path_info, str) else "/"
    # PEP 3333: PATH_INFO is bytes decoded as latin-1; re-encode them as the client sent them.
    return quote(text.encode("latin-1"), safe="/:@!$&'()*+,;=-._~") or "/"


def route_of(path: str) -> Route:
    """Map a raw path to a route; the function's own name may lead it (hosting rewrites keep it)."""
    if path == FUNCTION_PREFIX or path.startswith(FUNCTION_PREFIX + "/"):
        path = path[len(FUNCTION_PREFIX) :]
    first, slash, rest = path.lstrip("/").partition("/")
    if not first:
        return Route("mode")
    if first == EXPERIMENTS:
        if not rest.strip("/"):
            return Route("experiments")
        if "/" not in rest.rstrip("/"):
            return Route("experiment", experiment_id=rest.rstrip("/"))
        raise NotFound(path, ROUTES)
    if first.startswith("_"):
        raise NotFound(path, ROUTES)
    return Route("forward", upstream=first, rest=slash + rest)


def serve_proxy(request: flask.Request) -> Reply:
    """``chaos_proxy``: mode endpoint, experiments API or forwarding, by path."""
    try:
        settings = current_settings()
        rt = runtime()
        route = route_of(raw_path(request.environ))
        if route.kind == "forward":
            return serve_forward(request, route, settings, rt)
        if route.kind == "mode":
            return serve_mode(request, settings, rt)
        return serve_experiments(request, route, settings, rt)
    except ChaosError as exc:
        return error_response(exc)


def serve_mode(request: flask.Request, settings: ChaosSettings, rt: Runtime) -> Reply:
    """``GET|POST /chaos_proxy?mode=ok|drop|slow|error[&slow_ms=]``."""
    allow_methods(request, "GET", "POST")
    admit(request, settings, rt, injects=True)
    values = request_values(request, with_body=request.method == "POST")
    params = parse_proxy_params(values, max_delay_ms=settings.max_delay_ms)
    fault = inject_mode(request, params.mode, params.slow_ms, settings, rt, experiment=None)
    if fault is not None:
        return fault
    slept_ms = 0.0
    if params.mode == "slow":
        slept_ms = _sleep_ms(rt, params.slow_ms)
    body = {"ok": True, "mode": params.mode, "delay_ms": round(slept_ms, 3), "trace_id": trace_id()}
    return body, 200, dict(_NO_STORE)


def inject_mode(
    request: flask.Request,
    mode: Mode,
    slow_ms: int,
    settings: ChaosSettings,
    rt: Runtime,
    *,
    experiment: Experiment | None,
) -> Reply | None:
    """The injected answer for ``error`` and ``drop``; None for ``ok`` and ``slow``."""
    details: dict[str, object] = {"mode": mode}
    headers: Headers = {INJECTED_HEADER: "true", **_NO_STORE}
    if experiment is not None:
        details["experiment_id"] = experiment.id
        details["upstream"] = experiment.upstream
        headers[EXPERIMENT_HEADER] = experiment.id
    if mode == "error":
        body, status = json_error(
            502, "injected_error", "chaos_proxy injected a 502 (mode=error)", **details
        )
        return body, status, headers
    if mode != "drop":
        return None
    from shared.chaos.drop import connection_from_environ, hold_and_drop

    outcome = hold_and_drop(
        connection_from_environ(request.environ), hold_s=settings.drop_hold_s, clock=rt.clock
    )
    if outcome.closed:
        # The client never sees this: the socket is already shut down. It is what gets logged.
        status = DROP_CLIENT_GONE_STATUS if outcome.client_gave_up else DROP_CLOSED_STATUS
        return "", status, headers
    body, status = json_error(
        DROP_FALLBACK_STATUS,
        "injected_drop",
        f"held the request {outcome.held_s:.3f} s; this server exposes no socket to drop",
        held_s=round(outcome.held_s, 3),
        **details,
    )
    return body, status, headers


def serve_forward(
    request: flask.Request, route: Route, settings: ChaosSettings, rt: Runtime
) -> Reply:
    """``/chaos_proxy/<upstream>/<path>``: forward, shaped by the upstream's active experiment.

    Not authenticated by the chaos roles: it carries the application's own traffic (and its own
    ``Authorization`` for the upstream). With the kill switch off, experiments are ignored and
    traffic passes untouched.
    """
    from shared.chaos.forward import OutgoingRequest, forward_headers, send, upstream_url

    upstreams = settings.upstreams or {}
    upstream = upstreams.get(route.upstream)
    if upstream is None:
        raise UnknownUpstream(route.upstream, upstreams)
    url = upstream_url(upstream, route.rest, request.query_string.decode("latin-1"))
    experiment = (
        rt.active.lookup(upstream.name, ttl_s=settings.experiment_cache_ttl_s)
        if settings.enabled
        else None
    )
    if experiment is not None:
        fault = inject_mode(
            request, experiment.mode, experiment.slow_ms, settings, rt, experiment=experiment
        )
        if fault is not None:
            return fault
        if experiment.mode == "slow":
            _sleep_ms(rt, experiment.slow_ms)
    trace = current_trace()
    outgoing = OutgoingRequest(
        upstream=upstream.name,
        method=request.method,
        url=url,
        headers=forward_headers(
            request.headers.items(),
            client_addr=request.remote_addr,
            original_host=request.host,
            scheme=request.scheme,
            trace_headers=trace.child().to_headers() if trace is not None else {},
        ),
        body=request.get_data(cache=False),
    )
    answer = send(outgoing, http=rt.http(), read_timeout_s=settings.upstream_timeout_s)
    response = flask.Response(
        answer.body, status=answer.status, headers=list(answer.headers), direct_passthrough=True
    )
    if not any(name.lower() == "content-type" for name, _ in answer.headers):
        del response.headers["Content-Type"]  # werkzeug's default; the upstream sent none
    if experiment is not None:
        response.headers[EXPERIMENT_HEADER] = experiment.id
    return response


def serve_experiments(
    request: flask.Request, route: Route, settings: ChaosSettings, rt: Runtime
) -> Reply:
    """Start (POST), list (GET) and, by id, read (GET) or stop (DELETE) experiments."""
    if route.kind == "experiments":
        allow_methods(request, "GET", "POST")
    else:
        allow_methods(request, "GET", "DELETE")
    # Stopping and reading stay possible with the switch off: turning chaos off must never
    # prevent ending an experiment.
    principal = admit(request, settings, rt, injects=request.method == "POST")
    now = rt.clock.time()
    if route.kind == "experiments" and request.method == "POST":
        spec = parse_experiment_spec(
            request_values(request, with_body=True),
            upstreams=settings.upstream_names,
            max_delay_ms=settings.max_delay_ms,
        )
        experiment = rt.store.start(spec, now=now, created_by=principal.label)
        rt.active.invalidate(spec.upstream)
        _journal("started", experiment, principal)
        location = f"{FUNCTION_PREFIX}/{EXPERIMENTS}/{experiment.id}"
        return experiment.to_json(now), 201, {"Location": location, **_NO_STORE}
    if route.kind == "experiments":
        limit = parse_list_limit(request_values(request, with_body=False))
        listed = rt.store.list(limit=limit)
        body = {"experiments": [e.to_json(now) for e in listed], "count": len(listed)}
        return body, 200, dict(_NO_STORE)
    if request.method == "GET":
        return rt.store.get(route.experiment_id).to_json(now), 200, dict(_NO_STORE)
    stopped = rt.store.stop(route.experiment_id, now=now)
    rt.active.invalidate(stopped.upstream)
    _journal("stopped", stopped, principal)
    return stopped.to_json(now), 200, dict(_NO_STORE)


def _journal(action: Literal["started", "stopped"], e: Experiment, by: Principal) -> None:
    from shared.chaos.experiments import ExperimentChanged
    from shared.resilience import events

    events.emit(
        ExperimentChanged("chaos_proxy", action, e.id, e.upstream, e.mode, e.expires_at, by.label)
    )


def _sleep_ms(rt: Runtime, ms: int) -> float:
    started = rt.clock.monotonic()
    rt.clock.sleep(ms / 1000.0)
    return (rt.clock.monotonic() - started) * 1000.0
