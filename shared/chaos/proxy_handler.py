"""``chaos_proxy``'s handler: the mode endpoint and forwarding, routed by the raw path.

- ``/chaos_proxy?mode=ok|drop|slow|error``: answer in that mode;
- ``/chaos_proxy/_experiments[/<id>]``: the experiments API (:mod:`shared.chaos.experiments_api`);
- ``/chaos_proxy/<upstream>/<path>``: forward, shaped by the upstream's active experiment.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import quote

import flask

from shared.chaos.config import ChaosSettings
from shared.chaos.errors import ChaosError, NotFound, UnknownUpstream
from shared.chaos.params import Mode, parse_proxy_params
from shared.chaos.request import (
    NO_STORE,
    Headers,
    Reply,
    admit,
    allow_methods,
    current_settings,
    error_response,
    request_values,
    sleep_ms,
    trace_id,
)
from shared.chaos.runtime import Runtime, runtime
from shared.obs import json_error
from shared.obs.requests import INJECTED_HEADER
from shared.obs.trace import current_trace

if TYPE_CHECKING:
    from shared.chaos.experiments import Experiment

EXPERIMENT_HEADER: Final = "X-Chaos-Experiment"
"""Names the experiment that shaped a forwarded response."""
FUNCTION_PREFIX: Final = "/chaos_proxy"
EXPERIMENTS: Final = "_experiments"
ROUTES: Final = (
    "/chaos_proxy?mode=ok|drop|slow|error",
    "/chaos_proxy/_experiments",
    "/chaos_proxy/_experiments/<id>",
    "/chaos_proxy/<upstream>/<path>",
)
MAX_FORWARDED_BODY_BYTES: Final = 32 * 1024 * 1024
"""Largest body forwarded upstream (Cloud Functions' own request limit); larger is a 413."""
DROP_CLOSED_STATUS: Final = 444
"""Logged (never sent) status of a drop that closed the connection (nginx's convention)."""
DROP_CLIENT_GONE_STATUS: Final = 499
"""Logged (never sent) status of a drop whose client gave up first (nginx's convention)."""
DROP_FALLBACK_STATUS: Final = 504
"""Sent after the hold when the server exposes no socket to close."""
# RFC 3986 §3.1: a scheme, then "://": what makes a request target absolute-form (RFC 9112 §3.2.2).
_ABSOLUTE_FORM: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a ``chaos_proxy`` request goes. ``rest`` is the raw (percent-encoded) path after the
    upstream name, ``experiment_id`` the last segment of an experiment URL."""

    kind: Literal["mode", "experiments", "experiment", "forward"]
    upstream: str = ""
    rest: str = ""
    experiment_id: str = ""


def raw_path(environ: Mapping[str, object]) -> str:
    """The request path exactly as the client encoded it (``%2F`` stays ``%2F``).

    Only a request target that *starts* with ``scheme://`` is absolute-form; a ``://`` later in an
    origin-form path is part of that path.
    """
    for key in ("RAW_URI", "REQUEST_URI"):
        raw = environ.get(key)
        if isinstance(raw, str) and raw:
            target = raw.split("?", 1)[0]
            if not target.startswith("/"):
                matched = _ABSOLUTE_FORM.match(target)
                authority_and_path = target[matched.end() :] if matched else ""
                target = "/" + authority_and_path.partition("/")[2]
            return target
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
        raise NotFound(FUNCTION_PREFIX + path, ROUTES)
    # Any other first segment names an upstream; one starting with "_" never does (reserved),
    # so it is answered like any unknown upstream.
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
        from shared.chaos.experiments_api import serve_experiments

        return serve_experiments(request, route.experiment_id or None, settings, rt)
    except ChaosError as exc:
        return error_response(exc)


def serve_mode(request: flask.Request, settings: ChaosSettings, rt: Runtime) -> Reply:
    """``GET|POST /chaos_proxy?mode=ok|drop|slow|error[&slow_ms=]``."""
    allow_methods(request, "GET", "POST")
    admit(request, settings, rt, injects=True)
    values = request_values(request, with_body=request.method == "POST")
    params = parse_proxy_params(values, max_delay_ms=settings.max_delay_ms)
    fault = inject_mode(request, params.mode, settings, rt, experiment=None)
    if fault is not None:
        return fault
    slept_ms = 0.0
    if params.mode == "slow":
        slept_ms = sleep_ms(rt, params.slow_ms)
    body = {"ok": True, "mode": params.mode, "delay_ms": round(slept_ms, 3), "trace_id": trace_id()}
    return body, 200, dict(NO_STORE)


def inject_mode(
    request: flask.Request,
    mode: Mode,
    settings: ChaosSettings,
    rt: Runtime,
    *,
    experiment: Experiment | None,
) -> Reply | None:
    """The injected answer for ``error`` and ``drop``; None for ``ok`` and ``slow``."""
    details: dict[str, object] = {"mode": mode}
    headers: Headers = {INJECTED_HEADER: "true", **NO_STORE}
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
    from shared.chaos.drop import HELD_DROPS, connection_from_environ, hold_and_drop

    with HELD_DROPS.slot(settings.max_held_drops, retry_after_s=math.ceil(settings.drop_hold_s)):
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

    upstream = settings.upstreams.get(route.upstream)
    if upstream is None:
        raise UnknownUpstream(route.upstream, settings.upstreams)
    url = upstream_url(upstream, route.rest, request.query_string.decode("latin-1"))
    experiment = (
        rt.active.lookup(upstream.name, ttl_s=settings.experiment_cache_ttl_s)
        if settings.enabled
        else None
    )
    if experiment is not None:
        fault = inject_mode(request, experiment.mode, settings, rt, experiment=experiment)
        if fault is not None:
            return fault
        if experiment.mode == "slow":
            sleep_ms(rt, experiment.slow_ms)
    trace = current_trace()
    request.max_content_length = MAX_FORWARDED_BODY_BYTES  # get_data raises a 413 past it
    outgoing = OutgoingRequest(
        upstream=upstream.name,
        method=request.method,
        url=url,
        headers=forward_headers(
            request.headers.items(),
            client_addr=request.remote_addr,
            original_host=request.host,
            scheme=request.scheme,
            trace_headers=trace.to_headers() if trace is not None else {},
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
