"""The canary package's exceptions: one root, :class:`CanaryError`."""

from __future__ import annotations


class CanaryError(Exception):
    """Root of every error this package raises."""


class CanaryConfigError(CanaryError):
    """Invalid stages, thresholds or observations; the message says what is allowed."""


class RolloutHalted(CanaryError):
    """The rollout was halted (rolled back); it does not advance until a new version starts."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"rollout {name!r} is halted: {reason}")


class RolloutConflict(CanaryError):
    """The rollout moved under us (another controller or a retry applied a different change)."""


class TargetUnavailable(CanaryError):
    """The rollout's store (Firestore) failed; nothing is known to have changed."""
