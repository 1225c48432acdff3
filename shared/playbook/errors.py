"""The playbook package's exceptions: one root, :class:`PlaybookError`."""

from __future__ import annotations


class PlaybookError(Exception):
    """Root of every error this package raises."""


class PlaybookInvalid(PlaybookError):
    """A playbook failed validation; nothing was run.

    The message reads ``<playbook>: <path>: <problem>``, where ``path`` locates the value
    (``method[2].provider.arguments.mode``) and ``problem`` says what is allowed.
    """

    def __init__(self, playbook: str, path: str, problem: str) -> None:
        self.playbook = playbook
        self.path = path
        self.problem = problem
        where = f"{playbook}: {path}" if path else playbook
        super().__init__(f"{where}: {problem}")


class ActivityFailed(PlaybookError):
    """A provider ran but its result is a failure (unexpected HTTP status, load cap exceeded)."""


class ToleranceError(PlaybookError):
    """A tolerance could not be applied to an output (missing path, incomparable types)."""
