"""The exception hierarchy of :mod:`shared.resilience`: one root, one class per refusal."""

from __future__ import annotations


class ResilienceError(Exception):
    """Root of every exception raised by the resilience package itself."""


class ConfigError(ResilienceError, ValueError):
    """A component was configured with an invalid value; the message lists what is valid."""


class CircuitOpenError(ResilienceError):
    """The circuit breaker refused the call without running it.

    ``retry_after`` is the number of seconds until the breaker will let a probe through.
    """

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry after {retry_after:.3f} s")
        self.name = name
        self.retry_after = retry_after


class RateLimitExceeded(ResilienceError):
    """A limiter refused an acquisition; ``retry_after`` is in seconds."""

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"rate limit {name!r} exceeded; retry after {retry_after:.3f} s")
        self.name = name
        self.retry_after = retry_after


class AdmissionRejected(ResilienceError):
    """Plan-priority admission turned a request away; ``retry_after`` is in seconds."""

    def __init__(self, plan: str, reason: str, retry_after: float) -> None:
        super().__init__(f"{plan} request rejected ({reason}); retry after {retry_after:.3f} s")
        self.plan = plan
        self.reason = reason
        self.retry_after = retry_after


class StorageError(ResilienceError):
    """A shared-state store (e.g. Redis) failed; wraps the driver's exception."""
