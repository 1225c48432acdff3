"""The exception hierarchy of :mod:`shared.slo`: one root, one class per place things fail."""

from __future__ import annotations

from collections.abc import Sequence

from shared.resilience.transient import TransientError


class SloError(Exception):
    """Root of every exception raised by the SLO monitor itself."""


class ConfigInvalid(SloError, ValueError):
    """The SLO file is unusable; ``problems`` names each bad SLO and field and what is allowed."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"invalid SLO configuration {source}: {len(self.problems)} problem(s)\n{lines}"
        )


class SourceError(SloError):
    """An SLI source (backend) could not answer a query; ``transient`` says whether to retry."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class RecordError(SloError):
    """Firestore could not record the run, even after retries."""


class AlertDeliveryError(SloError):
    """Slack refused or did not answer; the message never contains the webhook URL.

    ``status_code`` (HTTP status, or None for a network failure) and ``retry_after`` (seconds)
    let :func:`shared.resilience.transient.is_transient` and the retry policy judge it.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class AlertUnreachable(AlertDeliveryError, TransientError):
    """Slack could not be reached (connection refused, reset, timed out): always transient."""

    def __init__(self, message: str) -> None:
        AlertDeliveryError.__init__(self, message)
