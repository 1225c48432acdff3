"""The deploy's one exception."""

from __future__ import annotations


class DeployError(RuntimeError):
    """A deploy step cannot go on: a gcloud step failed or the service is not in a fitting state."""
