"""Where decisions are applied: the :class:`RolloutTarget` protocol and two implementations
that need no cloud (an in-memory one, and one printing ``gcloud`` traffic-split commands).

The Firestore target (``rollout/<name>``) is :class:`shared.canary.firestore.FirestoreRollout`.
"""

from __future__ import annotations

import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, TextIO

from shared.canary.errors import CanaryConfigError, RolloutConflict, RolloutHalted


@dataclass(frozen=True, slots=True)
class RolloutState:
    """A rollout: ``version`` serves ``percent`` percent (the rest: ``previous_version``).

    ``halted`` is set by a rollback (``rolloutAdvance`` must not advance a halted rollout);
    ``rolled_back_version`` is the version the rollback removed.
    """

    name: str
    version: str
    percent: int
    previous_version: str | None = None
    halted: bool = False
    halt_reason: str = ""
    rolled_back_version: str | None = None
    generation: int = 0


class RolloutTarget(Protocol):
    """Applies the gate's decisions. Every method is idempotent under retries."""

    def state(self) -> RolloutState:
        """The rollout as it is now."""
        ...

    def set_percent(self, percent: int, *, expected_percent: int | None = None) -> RolloutState:
        """Serve the new version to ``percent`` percent.

        With ``expected_percent``, only from that percent (compare-and-set); when the rollout is
        already at ``percent`` nothing changes (a retried call). Raises :class:`RolloutHalted`
        after a rollback and :class:`RolloutConflict` when the rollout is elsewhere.
        """
        ...

    def rollback(self, reason: str) -> RolloutState:
        """Restore the previous version (percent 0), halt the rollout; a no-op when halted."""
        ...


def check_percent(percent: int) -> int:
    """``percent`` when it is an integer in [0, 100]."""
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise CanaryConfigError(f"percent must be an integer in [0, 100], got {percent!r}")
    return percent


def apply_percent(
    state: RolloutState, percent: int, expected_percent: int | None
) -> RolloutState | None:
    """The new state for ``set_percent`` (None: nothing to change); shared by every target."""
    check_percent(percent)
    if state.halted:
        raise RolloutHalted(state.name, state.halt_reason)
    if state.percent == percent:
        return None
    if expected_percent is not None and state.percent != expected_percent:
        raise RolloutConflict(
            f"rollout {state.name!r} is at {state.percent}%, not {expected_percent}%: "
            f"not moving it to {percent}%"
        )
    return replace(state, percent=percent, generation=state.generation + 1)


def apply_rollback(state: RolloutState, reason: str) -> RolloutState | None:
    """The new state for ``rollback`` (None: already halted)."""
    if state.halted:
        return None
    return replace(
        state,
        version=state.previous_version or state.version,
        previous_version=None,
        percent=0,
        halted=True,
        halt_reason=reason,
        rolled_back_version=state.version,
        generation=state.generation + 1,
    )


class MemoryRollout:
    """A :class:`RolloutTarget` in memory (tests, local dry runs)."""

    def __init__(self, state: RolloutState) -> None:
        self._state = state
        self._lock = threading.Lock()

    def state(self) -> RolloutState:
        with self._lock:
            return self._state

    def set_percent(self, percent: int, *, expected_percent: int | None = None) -> RolloutState:
        with self._lock:
            new = apply_percent(self._state, percent, expected_percent)
            if new is not None:
                self._state = new
            return self._state

    def rollback(self, reason: str) -> RolloutState:
        with self._lock:
            new = apply_rollback(self._state, reason)
            if new is not None:
                self._state = new
            return self._state


class GcloudTrafficPlan:
    """A dry-run :class:`RolloutTarget` for Cloud Run / Cloud Functions gen2 traffic splitting.

    Prints (and keeps in :attr:`commands`) the ``gcloud run services update-traffic`` command
    each decision needs; runs nothing. ``canary`` and ``baseline`` are revision names.
    """

    def __init__(
        self,
        service: str,
        *,
        region: str,
        canary: str,
        baseline: str,
        project: str | None = None,
        percent: int = 0,
        out: TextIO | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        for label, value in (("service", service), ("region", region), ("canary", canary),
                             ("baseline", baseline)):  # fmt: skip
            if not value or not all(c.isalnum() or c in "-_" for c in value):
                raise CanaryConfigError(
                    f"{label} must be a Cloud Run name (letters, digits, - and _), got {value!r}"
                )
        self.service = service
        self.region = region
        self.project = project
        self.canary = canary
        self.baseline = baseline
        self.commands: list[str] = []
        self._out = out
        self._echo = echo
        self._memory = MemoryRollout(
            RolloutState(service, canary, check_percent(percent), previous_version=baseline)
        )

    def state(self) -> RolloutState:
        return self._memory.state()

    def set_percent(self, percent: int, *, expected_percent: int | None = None) -> RolloutState:
        before = self._memory.state()
        after = self._memory.set_percent(percent, expected_percent=expected_percent)
        if after != before:
            split = f"{self.canary}={percent}"
            if percent < 100:
                split += f",{self.baseline}={100 - percent}"
            self._emit(split)
        return after

    def rollback(self, reason: str) -> RolloutState:
        before = self._memory.state()
        after = self._memory.rollback(reason)
        if after != before:
            self._emit(f"{self.baseline}=100")
        return after

    def command(self, split: str) -> str:
        """The ``gcloud`` command giving the revisions the traffic split ``split``."""
        argv = [
            "gcloud", "run", "services", "update-traffic", self.service,
            f"--region={self.region}", f"--to-revisions={split}",
        ]  # fmt: skip
        if self.project:
            argv.append(f"--project={self.project}")
        return shlex.join(argv)

    def _emit(self, split: str) -> None:
        line = self.command(split)
        self.commands.append(line)
        if self._echo is not None:
            self._echo(line)
        else:
            print(line, file=self._out or sys.stdout, flush=True)
