"""What both chaos handlers do with a request: read its values, admit its caller, answer errors.

Each handler parses and validates the request with these helpers, calls the pure code of this
package and returns ``(json, status, headers)`` or a :class:`flask.Response`. Every
:class:`ChaosError` becomes a uniform JSON error through :func:`error_response`; anything else is
left to ``@observed`` (a JSON 500 with the trace id, never a stack trace).
"""

from __future__ import annotations

import json
from typing import Final, TypeAlias

import flask
from flask.typing import ResponseReturnValue

from shared.chaos.auth import Principal, authorize
from shared.chaos.config import ChaosSettings, settings
from shared.chaos.errors import (
    ChaosDisabled,
    ChaosError,
    ConfigurationError,
    InvalidParameter,
    MethodNotAllowed,
)
from shared.chaos.runtime import Runtime
from shared.obs import json_error
from shared.obs.telemetry import current_span_ids
from shared.settings import SettingsError

Reply: TypeAlias = ResponseReturnValue
Headers: TypeAlias = dict[str, str]

MAX_BODY_BYTES: Final = 64 * 1024
"""Largest JSON body the chaos endpoints read (forwarded bodies are not limited here)."""
NO_STORE: Final = {"Cache-Control": "no-store"}


def current_settings() -> ChaosSettings:
    """This instance's settings; a bad environment is a :class:`ConfigurationError` (500)."""
    try:
        return settings()
    except SettingsError as exc:
        raise ConfigurationError(exc) from exc


def error_response(exc: ChaosError) -> Reply:
    """The uniform JSON error for ``exc`` (status, ``error`` code, message, details, headers)."""
    body, status = json_error(exc.status_code, exc.code, str(exc), **exc.details())
    headers: Headers = {**NO_STORE, **exc.headers()}
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allowed)  # RFC 9110 §15.5.6
    return body, status, headers


def trace_id() -> str:
    """The current request's trace id ('' outside ``@observed``)."""
    # The span's own ids, formatted once: a TraceContext would re-validate what the SDK made.
    ids = current_span_ids()
    return ids[0] if ids is not None else ""


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
    """:class:`MethodNotAllowed` (405 with ``Allow``) unless the method is one of ``allowed``."""
    if request.method not in allowed:
        raise MethodNotAllowed(request.method, allowed)


def sleep_ms(rt: Runtime, ms: int) -> float:
    """Sleep ``ms`` milliseconds on the runtime's clock; the measured wait in milliseconds."""
    started = rt.clock.monotonic()
    rt.clock.sleep(ms / 1000.0)
    return (rt.clock.monotonic() - started) * 1000.0


def answer_framework_errors(function: str) -> None:
    """Answer the HTTP errors Flask raises before the handler runs as JSON, through ``@observed``.

    functions-framework routes ``/`` and ``/<path:path>``; a path the rule cannot match (an encoded
    CR or LF: ``/chaos_delay/%0a``) or ``/robots.txt`` got Flask's HTML 404, with no trace id and no
    request record. Registered on the app being created (functions-framework exposes its
    ``errorhandler`` while it loads the module; elsewhere the call does nothing), the handler
    re-raises the error inside an ``@observed`` function, which answers every ``HTTPException``
    as a JSON error with the trace id (and ``Allow`` on a 405) and records the request.
    """
    import functions_framework
    from werkzeug.exceptions import HTTPException

    from shared.obs import observed

    @observed(function)
    def reraise(request: flask.Request) -> Reply:
        raise request.environ[_PENDING_ERROR]

    def handle(exc: HTTPException) -> Reply:
        flask.request.environ[_PENDING_ERROR] = exc
        return reraise(flask.request)

    functions_framework.errorhandler(HTTPException)(handle)


_PENDING_ERROR: Final = "shared.chaos.pending_http_error"
