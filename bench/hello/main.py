"""The benchmarks' baselines: the barest functions-framework HTTP functions."""

from __future__ import annotations

import random
import time

import flask
import functions_framework


@functions_framework.http
def hello(request: flask.Request) -> tuple[dict[str, str], int]:
    """Answer a small JSON body, like the chaos functions do."""
    return {"hello": "world"}, 200


@functions_framework.http
def sleep(request: flask.Request) -> tuple[dict[str, float], int]:
    """Sleep a uniform ``d..2d`` ms (``?d=``, default 0) and report the measured wait.

    The floor of what ``chaos_delay`` can achieve on the same server: no validation, no logging.
    """
    d_ms = float(request.args.get("d", "0"))
    started = time.monotonic()
    time.sleep(random.uniform(d_ms, 2 * d_ms) / 1000)
    return {"delay_ms": (time.monotonic() - started) * 1000}, 200


@functions_framework.http
def same_response(request: flask.Request) -> tuple[dict[str, object], int, dict[str, str]]:
    """The response ``chaos_delay?p=0&d=0`` gives (its JSON body with a fresh trace id, and the
    same two extra headers), made by a bare function with no logic at all.

    The floor of any implementation of that response contract on this server: what its bigger
    body and extra headers cost Flask and werkzeug, apart from the work done to decide them.
    """
    trace_id = f"{random.getrandbits(128) or 1:032x}"
    body: dict[str, object] = {
        "ok": True,
        "status": 200,
        "injected_status": None,
        "delay_ms": 0.0,
        "planned_delay_ms": 0.0,
        "p": 0.0,
        "d": 0,
        "seed": None,
        "trace_id": trace_id,
    }
    return body, 200, {"Cache-Control": "no-store", "X-Trace-Id": trace_id}
