"""Parsing and validating graph_ask's requests: every bad value is a :class:`BadInput` naming it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

import flask

from examples.graph_ask.errors import BadInput
from shared.resilience.admission import PLANS, Plan

MAX_QUESTION_CHARS: Final = 500
MAX_USER_CHARS: Final = 128
MAX_INSIGHT_BYTES: Final = 16 * 1024


@dataclass(frozen=True, slots=True)
class Question:
    """A parsed ``POST /graph_ask``."""

    question: str
    plan: Plan
    user: str | None


@dataclass(frozen=True, slots=True)
class InsightRequest:
    """A parsed ``POST /insights/deliver``."""

    insight: Mapping[str, Any]
    user: str | None


def json_object(request: flask.Request) -> dict[str, Any]:
    """The request body as a JSON object, or BadInput naming ``body``."""
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise BadInput("body", "a JSON object", _cut(request.get_data(as_text=True)))
    return body


def parse_question(request: flask.Request) -> Question:
    """``{"question": str, "user": str?}`` with ``X-Plan`` and ``X-User-Id`` headers."""
    body = json_object(request)
    question = body.get("question")
    if not isinstance(question, str) or not 1 <= len(question.strip()) <= MAX_QUESTION_CHARS:
        raise BadInput(
            "question", f"a string of 1 to {MAX_QUESTION_CHARS} characters", _cut(question)
        )
    raw_plan = request.headers.get("X-Plan", "").strip().lower() or "free"
    if raw_plan not in PLANS:
        raise BadInput("X-Plan", "one of " + ", ".join(PLANS), _cut(raw_plan))
    return Question(question.strip(), cast(Plan, raw_plan), _user(body, request))


def parse_insight(request: flask.Request) -> InsightRequest:
    """``{"insight": {...}, "user": str?}``; the insight a non-empty object of at most 16 KiB."""
    body = json_object(request)
    insight = body.get("insight")
    allowed = f"a non-empty JSON object of at most {MAX_INSIGHT_BYTES} bytes"
    if not isinstance(insight, dict) or not insight:
        raise BadInput("insight", allowed, _cut(insight))
    if len(json.dumps(insight, separators=(",", ":")).encode()) > MAX_INSIGHT_BYTES:
        raise BadInput("insight", allowed, "(too large)")
    return InsightRequest(insight, _user(body, request))


def _user(body: Mapping[str, Any], request: flask.Request) -> str | None:
    user = body.get("user")
    parameter = "user"
    if user is None:
        user = request.headers.get("X-User-Id") or None
        parameter = "X-User-Id"
    if user is None:
        return None
    if not isinstance(user, str) or not 1 <= len(user.strip()) <= MAX_USER_CHARS:
        raise BadInput(parameter, f"a string of 1 to {MAX_USER_CHARS} characters", _cut(user))
    return user.strip()


def _cut(value: object) -> object:
    """What the caller sent, short enough to echo in an error."""
    if isinstance(value, str):
        return value[:80]
    if value is None or isinstance(value, bool | int | float):
        return value
    return type(value).__name__
