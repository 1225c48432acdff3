"""Which failures are worth retrying, which are the caller's fault, and how long to wait.

Classification is duck-typed so every layer interoperates: any exception with an integer
``status_code`` attribute (or a ``response.status_code``, as ``requests.HTTPError`` has) is
judged by that status; any exception with a numeric ``retry_after`` attribute (seconds) or a
response with a ``Retry-After`` header says how long to wait.
"""

from __future__ import annotations

import email.utils
import sys
import time
from typing import Any

from shared.resilience.errors import (
    AdmissionRejected,
    CircuitOpenError,
    RateLimitExceeded,
    ResilienceError,
)

#: HTTP statuses that mean "try again later".
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

_GOOGLE_TRANSIENT = (
    "ResourceExhausted",
    "ServiceUnavailable",
    "DeadlineExceeded",
    "Aborted",
    "InternalServerError",
)


class TransientError(ResilienceError):
    """Raise this (or a subclass) to mark a failure as retryable; ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class HttpStatusError(ResilienceError):
    """An HTTP dependency answered with a non-success status."""

    def __init__(
        self, status_code: int, message: str = "", *, retry_after: float | None = None
    ) -> None:
        super().__init__(message or f"HTTP {status_code}")
        self.status_code = status_code
        self.retry_after = retry_after


def status_code_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, if any."""
    code = getattr(exc, "status_code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) else None


def _google_transient(exc: BaseException) -> bool:
    # Only consult google-api-core when it is already loaded: if it is not imported, no exception
    # can be an instance of its classes, and importing it here would cost every caller ~50 ms.
    module = sys.modules.get("google.api_core.exceptions")
    if module is None:
        return False
    return isinstance(exc, tuple(getattr(module, n) for n in _GOOGLE_TRANSIENT))


def is_transient(exc: BaseException) -> bool:
    """True for failures that a later identical call may not hit.

    Connection errors, timeouts, HTTP 408/429/5xx (502/503/504 and 500), google-api-core's
    ``ResourceExhausted``, ``ServiceUnavailable``, ``DeadlineExceeded``, ``Aborted`` and
    ``InternalServerError``, and :class:`TransientError`. Never an open breaker or a refusal by a
    local limiter: retrying those only burns the deadline.
    """
    if isinstance(exc, CircuitOpenError | RateLimitExceeded | AdmissionRejected):
        return False
    if isinstance(exc, TransientError):
        return True
    code = status_code_of(exc)
    if code is not None:
        return code in TRANSIENT_STATUSES
    if _google_transient(exc):
        return True
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    requests_exc = sys.modules.get("requests.exceptions")
    return requests_exc is not None and isinstance(
        exc, requests_exc.ConnectionError | requests_exc.Timeout
    )


def is_business_error(exc: BaseException) -> bool:
    """True for errors that say the request itself was wrong (4xx other than 408/429).

    Such errors must never trip a circuit breaker: the dependency is healthy.
    """
    code = status_code_of(exc)
    if code is not None:
        return 400 <= code < 500 and code not in TRANSIENT_STATUSES
    module = sys.modules.get("google.api_core.exceptions")
    if module is not None and isinstance(exc, module.ClientError):
        return not isinstance(exc, module.ResourceExhausted | module.TooManyRequests)
    return False


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def retry_after_of(exc: BaseException) -> float | None:
    """Seconds the failing peer asked us to wait, if it said."""
    explicit = getattr(exc, "retry_after", None)
    if isinstance(explicit, int | float) and not isinstance(explicit, bool):
        return max(0.0, float(explicit))
    response: Any = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        try:
            return parse_retry_after(headers.get("Retry-After"))
        except AttributeError:
            return None
    return None
