"""The exception hierarchy of :mod:`shared.chaos`: one root, one class per refusal.

Every error knows the HTTP status and the machine-readable ``code`` it maps to, and the extra JSON
``details`` (which parameter, what is allowed) its response body carries, so handlers map any
:class:`ChaosError` to a response in one place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shared.settings import SettingsError


class ChaosError(Exception):
    """Root of every exception raised by the chaos package itself."""

    status_code: int = 500
    code: str = "chaos_error"

    def details(self) -> Mapping[str, object]:
        """Extra fields for the JSON error body."""
        return {}

    def headers(self) -> Mapping[str, str]:
        """Extra response headers (``Retry-After`` on the retryable refusals)."""
        return {}


class InvalidParameter(ChaosError, ValueError):
    """A request parameter is malformed, out of range or unknown; says what is allowed.

    ``allowed`` is the compact machine-readable range (``"0.0..1.0"``, ``"429|500"``) that also
    appears in the OpenAPI document; ``message`` reads as a sentence.
    """

    status_code = 400
    code = "invalid_parameter"

    def __init__(self, parameter: str, message: str, *, allowed: str, got: object) -> None:
        self.parameter = parameter
        self.allowed = allowed
        self.got = _shown(got)
        super().__init__(f"{message}; got {self.got}")

    def details(self) -> Mapping[str, object]:
        return {"parameter": self.parameter, "allowed": self.allowed, "got": self.got}


class ConfigurationError(ChaosError):
    """Environment variables hold invalid values; a deployment bug, not the caller's.

    Wraps the :class:`~shared.settings.SettingsError` of the first use of the settings: the body
    names the first bad variable and its range, the message all of them.
    """

    status_code = 500
    code = "chaos_misconfigured"

    def __init__(self, settings_error: SettingsError) -> None:
        super().__init__(f"environment {settings_error}")
        first = settings_error.problems[0]
        self.variable = first.name
        self.allowed = first.allowed
        self.variables = [problem.name for problem in settings_error.problems]

    def details(self) -> Mapping[str, object]:
        return {"variable": self.variable, "allowed": self.allowed, "variables": self.variables}


class ChaosDisabled(ChaosError):
    """The kill switch is off: no fault may be injected."""

    status_code = 403
    code = "chaos_disabled"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def details(self) -> Mapping[str, object]:
        return {"reason": self.reason, "variable": "CHAOS_ENABLED"}


class Unauthenticated(ChaosError):
    """No credential, or one that does not verify."""

    status_code = 401
    code = "unauthenticated"


class Forbidden(ChaosError):
    """A verified caller without a role allowed to run chaos."""

    status_code = 403
    code = "forbidden"

    def __init__(self, message: str, allowed_roles: Iterable[str]) -> None:
        super().__init__(message)
        self.allowed_roles = tuple(allowed_roles)

    def details(self) -> Mapping[str, object]:
        return {"allowed_roles": list(self.allowed_roles)}


class AuthUnavailable(ChaosError):
    """Tokens cannot be verified right now (e.g. signing keys unreachable)."""

    status_code = 503
    code = "auth_unavailable"


class NotFound(ChaosError):
    """No route at this path."""

    status_code = 404
    code = "not_found"

    def __init__(self, path: str, routes: Iterable[str]) -> None:
        super().__init__(f"no route for {path!r}")
        self.routes = tuple(routes)

    def details(self) -> Mapping[str, object]:
        return {"routes": list(self.routes)}


class MethodNotAllowed(ChaosError):
    """The route exists but not for this HTTP method."""

    status_code = 405
    code = "method_not_allowed"

    def __init__(self, method: str, allowed: Iterable[str]) -> None:
        self.allowed = tuple(allowed)
        super().__init__(f"method {method} is not allowed here; allowed: {', '.join(self.allowed)}")

    def details(self) -> Mapping[str, object]:
        return {"allowed": list(self.allowed)}


class UnknownUpstream(ChaosError):
    """A forwarding request named an upstream that is not configured."""

    status_code = 404
    code = "unknown_upstream"

    def __init__(self, name: str, configured: Iterable[str]) -> None:
        self.configured = tuple(sorted(configured))
        listed = ", ".join(self.configured) or "(none: set CHAOS_UPSTREAMS)"
        super().__init__(f"upstream {_shown(name)} is not configured; configured: {listed}")
        self.name = name

    def details(self) -> Mapping[str, object]:
        return {"upstream": self.name, "configured": list(self.configured)}


class UpstreamFailed(ChaosError):
    """The upstream could not be reached or did not answer in time (a real, not injected, fault)."""

    status_code = 502
    code = "upstream_unavailable"

    def __init__(self, name: str, reason: str, *, timed_out: bool = False) -> None:
        super().__init__(f"upstream {name!r} {reason}")
        self.name = name
        if timed_out:
            self.status_code = 504
            self.code = "upstream_timeout"

    def details(self) -> Mapping[str, object]:
        return {"upstream": self.name}


class ExperimentNotFound(ChaosError):
    """No experiment has this id."""

    status_code = 404
    code = "experiment_not_found"

    def __init__(self, experiment_id: str) -> None:
        super().__init__(f"no experiment with id {_shown(experiment_id)}")
        self.experiment_id = experiment_id

    def details(self) -> Mapping[str, object]:
        return {"id": self.experiment_id}


class ExperimentConflict(ChaosError):
    """An experiment is already running for this upstream; stop it first."""

    status_code = 409
    code = "experiment_conflict"

    def __init__(self, upstream: str, active_id: str) -> None:
        super().__init__(
            f"experiment {active_id} is already active for upstream {upstream!r}; "
            f"stop it first (DELETE /chaos_proxy/_experiments/{active_id})"
        )
        self.upstream = upstream
        self.active_id = active_id

    def details(self) -> Mapping[str, object]:
        return {"upstream": self.upstream, "active_id": self.active_id}


class StoreUnavailable(ChaosError):
    """The experiments store (Firestore) failed; wraps the driver's exception."""

    status_code = 503
    code = "store_unavailable"


class Busy(ChaosError):
    """A retryable refusal: try again after ``retry_after_s`` seconds (503 + ``Retry-After``)."""

    status_code = 503
    code = "busy"

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def details(self) -> Mapping[str, object]:
        return {"retry_after_s": self.retry_after_s}

    def headers(self) -> Mapping[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class StoreContended(Busy):
    """Concurrent starts or stops kept aborting each other's transaction; retry shortly."""

    code = "store_contended"


class TooManyDrops(Busy):
    """This instance already holds ``CHAOS_MAX_HELD_DROPS`` dropped connections."""

    code = "too_many_drops"


def _shown(value: object, limit: int = 80) -> str:
    """A bounded printable form of a caller-supplied value, safe to echo in an error body."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
