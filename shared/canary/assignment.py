"""The serving side of a rollout: which version a user gets, and this instance's heartbeat.

A :class:`RolloutFollower` lives in each instance of the service being rolled out. It keeps the
document ``rollout/<name>`` in memory and re-reads it at most every ``refresh_s`` seconds, on
the request that finds it old: one read bounded by ``timeout_s``, by one thread at a time (the
others keep the copy they have). When the read fails, or before the first one answered, every
user gets stable: a rollout store outage must never widen a rollout.

At each refresh it also reports this instance's breakers to
``rollout/<name>/heartbeats/<instance>`` (``state`` and since when they are not closed) when
they changed or every ``beat_every_s`` seconds, which is how the monitor learns that a
dependency's breaker has stayed open. ``breaker_states`` gets the rollout as just read, so the
service reports the breakers of what it depends on now (a rolled-back candidate's breaker is no
longer one: nothing calls it, and it would never close).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.canary.cohort import Cohort, cohort_of
from shared.canary.errors import CanaryError
from shared.canary.rollout import Rollout
from shared.canary.store import RolloutStore
from shared.resilience.clock import SYSTEM_CLOCK, Clock

logger = logging.getLogger("shared.canary.assignment")


@dataclass(frozen=True, slots=True)
class Assignment:
    """A user's cohort and the version it gets (None: the service's own default)."""

    rollout: str
    cohort: Cohort
    version: str | None


class RolloutFollower:
    """Follows one rollout for one instance; thread-safe."""

    def __init__(
        self,
        name: str,
        store: RolloutStore,
        *,
        refresh_s: float = 2.0,
        timeout_s: float = 0.5,
        beat_every_s: float = 30.0,
        breaker_states: Callable[[Rollout | None], Mapping[str, str]] | None = None,
        clock: Clock = SYSTEM_CLOCK,
        instance: str | None = None,
    ) -> None:
        self.name = name
        self.store = store
        self.instance = instance or uuid.uuid4().hex[:12]
        self._refresh_s = refresh_s
        self._timeout_s = timeout_s
        self._beat_every_s = beat_every_s
        self._breaker_states = breaker_states
        self._clock = clock
        self._rollout: Rollout | None = None
        self._due = -float("inf")
        self._refreshing = threading.Lock()
        self._open_since: dict[str, float] = {}
        self._last_report: dict[str, dict[str, object]] | None = None
        self._last_beat = -float("inf")

    def assign(self, user: str | None) -> Assignment:
        """The cohort and version for ``user`` under the rollout as last read."""
        rollout = self.current()
        if rollout is None:
            return Assignment(self.name, "stable", None)
        candidate = rollout.serving
        if candidate is None:
            return Assignment(self.name, "stable", rollout.stable)
        cohort = cohort_of(self.name, user, rollout.percent)
        return Assignment(self.name, cohort, candidate if cohort == "candidate" else rollout.stable)

    def last(self) -> Rollout | None:
        """The rollout as last read, without refreshing."""
        return self._rollout

    def current(self) -> Rollout | None:
        """The rollout as last read (refreshed first when due and no other thread is at it)."""
        if self._clock.monotonic() >= self._due and self._refreshing.acquire(blocking=False):
            try:
                self.refresh()
            finally:
                self._refreshing.release()
        return self._rollout

    def refresh(self) -> None:
        """Re-read the document and report the breakers now."""
        self._due = self._clock.monotonic() + self._refresh_s
        try:
            self._rollout = self.store.read(self.name, self._timeout_s)
        except CanaryError as exc:
            logger.warning("rollout %s unreadable, serving stable: %s", self.name, exc)
            self._rollout = None
        try:
            self._beat()
        except CanaryError as exc:
            logger.warning("rollout %s heartbeat not written: %s", self.name, exc)

    def _beat(self) -> None:
        if self._breaker_states is None:
            return
        now = self._clock.time()
        report: dict[str, dict[str, object]] = {}
        for breaker, state in self._breaker_states(self._rollout).items():
            if state == "closed":
                self._open_since.pop(breaker, None)
            else:
                self._open_since.setdefault(breaker, now)
            report[breaker] = {"state": state, "open_since": self._open_since.get(breaker)}
        if report == self._last_report and now - self._last_beat < self._beat_every_s:
            return
        self.store.beat(self.name, self.instance, report, now, self._timeout_s)
        self._last_report, self._last_beat = report, now
