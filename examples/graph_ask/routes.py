"""The HTTP surface of graph_ask: thin handlers over :mod:`.answer` and :mod:`.insights`.

Each route has its own request-record name, so the SLOs judge it alone: ``graphAsk`` for
``POST /graph_ask``, ``insights`` for ``POST /insights/deliver``, ``graphAskStatus`` for the status
probe (kept out of the latency SLO) and ``graph_ask`` for anything else (404/405).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

import flask
from flask.typing import ResponseReturnValue

from examples.graph_ask.answer import Unavailable, answer_question
from examples.graph_ask.errors import BadInput
from examples.graph_ask.inputs import parse_insight, parse_question
from examples.graph_ask.rollout import models_for, record_latency
from examples.graph_ask.service import service
from shared.obs import COHORT_HEADER, current_trace, json_error, observed
from shared.resilience.admission import Ticket
from shared.resilience.errors import AdmissionRejected

ASK_PATH: Final = "/graph_ask"
STATUS_PATH: Final = "/graph_ask/_status"
DELIVER_PATH: Final = "/insights/deliver"

_NO_STORE: Final = {"Cache-Control": "no-store"}


def bad_input(exc: BadInput) -> ResponseReturnValue:
    body, status = json_error(
        400,
        "invalid_parameter",
        str(exc),
        parameter=exc.parameter,
        allowed=exc.allowed,
        got=exc.got,
    )
    return body, status, dict(_NO_STORE)


def method_not_allowed(method: str) -> ResponseReturnValue:
    body, status = json_error(
        405, "method_not_allowed", f"use {method}", code=405, allowed=[method]
    )
    return body, status, {"Allow": method, **_NO_STORE}


def retry_after_header(seconds: float) -> str:
    """Whole seconds, at least 1: HTTP's ``Retry-After`` takes no fractions."""
    return str(max(1, math.ceil(seconds)))


def ask(request: flask.Request) -> ResponseReturnValue:
    """``POST /graph_ask``: admission, then the answer pipeline."""
    if request.method != "POST":
        return method_not_allowed("POST")
    try:
        question = parse_question(request)
    except BadInput as exc:
        return bad_input(exc)
    svc = service()
    ticket: Ticket | None = None
    if svc.admission is not None:
        s = svc.settings
        wait = s.premium_wait_s if question.plan == "premium" else s.free_wait_s
        try:
            ticket = svc.admission.admit(question.plan, wait)
        except AdmissionRejected as exc:
            retry_after = round(exc.retry_after, 3)
            limited = {"error": "rate_limited", "plan": question.plan, "retry_after_s": retry_after}
            return limited, 429, {"Retry-After": retry_after_header(exc.retry_after), **_NO_STORE}
    # The cohort is decided after admission: a refused request served no version.
    started = time.perf_counter()
    assignment = svc.rollout.assign(question.user) if svc.rollout is not None else None
    tags = {COHORT_HEADER: assignment.cohort} if assignment is not None else {}
    models = models_for(assignment, svc.settings)
    try:
        answer = answer_question(question.question, svc, models)
    except Unavailable as exc:
        if assignment is not None:
            record_latency(assignment, time.perf_counter() - started, ok=False)
        body, status = json_error(
            503, exc.reason, "no answer could be composed", retry_after_s=exc.retry_after
        )
        headers = {**_NO_STORE, **tags}
        if exc.retry_after is not None:
            headers["Retry-After"] = retry_after_header(exc.retry_after)
        return body, status, headers
    if assignment is not None:
        record_latency(assignment, time.perf_counter() - started, ok=True)
    trace = current_trace()
    payload: dict[str, object] = {
        "answer": answer.text,
        "served": answer.served,
        "model": answer.model,
        "cache": answer.cache,
        "breakers": svc.breaker_states(),
        "plan": question.plan,
        "queue_wait_ms": round(ticket.waited * 1000.0, 3) if ticket is not None else 0.0,
        "trace_id": trace.trace_id if trace is not None else "",
    }
    if answer.degraded_reason is not None:
        payload["degraded_reason"] = answer.degraded_reason
    if assignment is not None:
        payload["cohort"] = assignment.cohort
        payload["version"] = models[0]  # the cohort's version (``model``: who answered)
    return payload, 200, {**_NO_STORE, **tags}


def deliver(request: flask.Request) -> ResponseReturnValue:
    """``POST /insights/deliver``: 200 when delivered, 502 when every attempt failed."""
    if request.method != "POST":
        return method_not_allowed("POST")
    try:
        parsed = parse_insight(request)
    except BadInput as exc:
        return bad_input(exc)
    outcome = service().sink.deliver(parsed.insight, parsed.user)
    body: dict[str, object] = {
        "delivered": outcome.delivered,
        "attempts": outcome.attempts,
        "delivery_id": outcome.delivery_id,
    }
    if outcome.error is not None:
        body["error"] = outcome.error
        return body, 502, dict(_NO_STORE)
    return body, 200, dict(_NO_STORE)


def status(request: flask.Request) -> ResponseReturnValue:
    """``GET /graph_ask/_status``: the exported view of the instance's resilience state."""
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed("GET")
    return service().status(), 200, dict(_NO_STORE)


def not_found(request: flask.Request) -> ResponseReturnValue:
    paths = [f"POST {ASK_PATH}", f"POST {DELIVER_PATH}", f"GET {STATUS_PATH}"]
    body, code = json_error(404, "not_found", f"no route {request.path}", paths=paths)
    return body, code, dict(_NO_STORE)


Route = Callable[[flask.Request], ResponseReturnValue]

ROUTES: Final[dict[str, Route]] = {
    ASK_PATH: observed("graphAsk")(ask),
    DELIVER_PATH: observed("insights")(deliver),
    STATUS_PATH: observed("graphAskStatus")(status),
}
_NOT_FOUND: Final = observed("graph_ask")(not_found)


def serve(request: flask.Request) -> ResponseReturnValue:
    """Route ``request`` by path to its observed handler."""
    handler = ROUTES.get(request.path.rstrip("/"), _NOT_FOUND)
    return handler(request)
