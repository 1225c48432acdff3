"""``chaos_delay``'s handler: ``GET|POST /chaos_delay?p=&d=&status=&seed=&retry_after=``."""

from __future__ import annotations

import os
import random
from typing import Final

import flask

from shared.chaos.delay import RandomSource, inject_delay, random_source
from shared.chaos.errors import ChaosError
from shared.chaos.params import DelayParams, parse_delay_params
from shared.chaos.request import (
    NO_STORE,
    Reply,
    admit,
    allow_methods,
    current_settings,
    error_response,
    request_values,
    trace_id,
)
from shared.chaos.runtime import Runtime, runtime
from shared.obs.requests import INJECTED_HEADER

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


def delay_params(request: flask.Request, max_delay_ms: int) -> DelayParams:
    """The request's validated parameters (query, or query and JSON body on POST)."""
    values = request_values(request, with_body=request.method != "GET")
    return parse_delay_params(values, max_delay_ms=max_delay_ms)


def serve_delay(request: flask.Request) -> Reply:
    """Wait ``d..2d`` ms, then answer 200 or, with probability ``p``, the injected ``status``."""
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
    headers = dict(NO_STORE)
    if not outcome.ok:
        body["error"] = "injected_error"
        body["message"] = f"chaos_delay injected a {outcome.status} (probability {params.p:g})"
        headers[INJECTED_HEADER] = "true"
        if outcome.retry_after_s is not None:
            headers["Retry-After"] = str(outcome.retry_after_s)
    return body, outcome.status, headers
