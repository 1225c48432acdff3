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
