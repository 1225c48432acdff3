"""The canary package's exceptions: one root, :class:`CanaryError`."""

from __future__ import annotations


class CanaryError(Exception):
    """Root of every error this package raises."""


class CanaryConfigError(CanaryError):
    """An invalid policy, rollout or sample; the message says what is allowed."""


class RolloutNotFound(CanaryError):
    """No document ``rollout/<name>``."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"rollout {name!r} does not exist: start it first")


class RolloutConflict(CanaryError):
    """The rollout moved under us (another run applied a decision first); nothing changed."""


class StoreUnavailable(CanaryError):
    """The rollout store (Firestore) failed or timed out; nothing is known to have changed."""


class SourceUnavailable(CanaryError):
    """The cohorts' request data (SQLite locally, Cloud Monitoring deployed) could not be read."""
