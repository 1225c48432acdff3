"""Timed experiments: a fault mode applied to all forwarded traffic of one upstream until it
expires by itself or is stopped.

The store is an adapter (:class:`ExperimentStore`): Firestore when deployed
(:mod:`shared.chaos.firestore_store`), :class:`MemoryExperimentStore` for tests and single-process
runs. The forwarding path asks :class:`ActiveExperiments`, which caches each upstream's answer for a
short TTL and fails open: when the store is down, traffic passes untouched (no chaos is the safe
state) and a :class:`ExperimentStoreFailed` event is emitted.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar, Literal, Protocol, TypeAlias, TypedDict, cast

from shared.chaos.errors import ExperimentConflict, ExperimentNotFound, StoreUnavailable
from shared.chaos.params import MODES, ExperimentSpec, Mode
from shared.resilience import events
from shared.resilience.cache import TTLCache
from shared.resilience.clock import SYSTEM_CLOCK, Clock

Status: TypeAlias = Literal["active", "expired", "stopped"]


class ExperimentDocument(TypedDict):
    """The stored form of an :class:`Experiment` (Firestore document, in-memory copy alike)."""

    id: str
    upstream: str
    mode: str
    duration_s: int
    slow_ms: int
    started_at: float
    expires_at: float
    stopped_at: float | None
    created_by: str
    name: str


@dataclass(frozen=True, slots=True)
class Experiment:
    """One experiment. Instants are epoch seconds; ``slow_ms`` matters only in ``slow`` mode."""

    id: str
    upstream: str
    mode: Mode
    duration_s: int
    slow_ms: int
    started_at: float
    expires_at: float
    stopped_at: float | None = None
    created_by: str = ""
    name: str = ""

    def status(self, now: float) -> Status:
        """``stopped`` early, ``expired`` by itself, or still ``active`` at ``now``."""
        if self.stopped_at is not None and self.stopped_at < self.expires_at:
            return "stopped"
        if now >= self.expires_at:
            return "expired"
        return "active"

    def is_active(self, now: float) -> bool:
        return self.status(now) == "active"

    def to_json(self, now: float) -> dict[str, object]:
        """The API representation: instants as RFC 3339 UTC strings, plus the status at ``now``."""
        return {
            "id": self.id,
            "upstream": self.upstream,
            "mode": self.mode,
            "duration_s": self.duration_s,
            "slow_ms": self.slow_ms if self.mode == "slow" else None,
            "started_at": _rfc3339(self.started_at),
            "expires_at": _rfc3339(self.expires_at),
            "stopped_at": None if self.stopped_at is None else _rfc3339(self.stopped_at),
            "status": self.status(now),
            "remaining_s": round(max(0.0, self.expires_at - now), 3)
            if self.is_active(now)
            else 0.0,
            "created_by": self.created_by,
            "name": self.name or None,
        }

    def to_document(self) -> ExperimentDocument:
        """The stored form (also the form ``from_document`` reads back)."""
        return {
            "id": self.id,
            "upstream": self.upstream,
            "mode": self.mode,
            "duration_s": self.duration_s,
            "slow_ms": self.slow_ms,
            "started_at": self.started_at,
            "expires_at": self.expires_at,
            "stopped_at": self.stopped_at,
            "created_by": self.created_by,
            "name": self.name,
        }

    def matches(self, *, upstream: str | None, name: str | None) -> bool:
        """Whether a bulk stop's selector picks this experiment (None matches anything)."""
        return (upstream is None or self.upstream == upstream) and (
            name is None or self.name == name
        )

    @classmethod
    def from_document(cls, doc: Mapping[str, object]) -> Experiment:
        """Rebuild from the stored form; raises :class:`StoreUnavailable` on a corrupt document."""
        try:
            mode = doc["mode"]
            if mode not in MODES:
                raise ValueError(f"mode {mode!r}")
            stopped = doc.get("stopped_at")
            return cls(
                id=str(doc["id"]),
                upstream=str(doc["upstream"]),
                mode=mode,
                duration_s=int(cast(int, doc["duration_s"])),
                slow_ms=int(cast(int, doc["slow_ms"])),
                started_at=float(cast(float, doc["started_at"])),
                expires_at=float(cast(float, doc["expires_at"])),
                stopped_at=None if stopped is None else float(cast(float, stopped)),
                created_by=str(doc.get("created_by") or ""),
                name=str(doc.get("name") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreUnavailable(f"corrupt experiment document: {exc}") from exc


def new_experiment(spec: ExperimentSpec, *, now: float, created_by: str = "") -> Experiment:
    """A fresh experiment starting at ``now`` (epoch seconds) with a random id."""
    return Experiment(
        id=uuid.uuid4().hex,
        upstream=spec.upstream,
        mode=spec.mode,
        duration_s=spec.duration_s,
        slow_ms=spec.slow_ms,
        started_at=now,
        expires_at=now + spec.duration_s,
        created_by=created_by,
        name=spec.name,
    )


class ExperimentStore(Protocol):
    """Where experiments live. Every method raises :class:`StoreUnavailable` when storage fails."""

    def start(self, spec: ExperimentSpec, *, now: float, created_by: str = "") -> Experiment:
        """Record and activate a new experiment; :class:`ExperimentConflict` if one is active."""
        ...

    def get(self, experiment_id: str) -> Experiment:
        """The experiment with this id; :class:`ExperimentNotFound` if none."""
        ...

    def list(self, *, limit: int) -> list[Experiment]:
        """The newest ``limit`` experiments, newest first."""
        ...

    def stop(self, experiment_id: str, *, now: float) -> Experiment:
        """End it now if active (idempotent otherwise); :class:`ExperimentNotFound` if none."""
        ...

    def stop_matching(
        self, *, upstream: str | None, name: str | None, now: float
    ) -> tuple[Experiment, ...]:
        """End every experiment active at ``now`` that matches; the ones it stopped."""
        ...

    def active_for(self, upstream: str, *, now: float) -> Experiment | None:
        """The experiment applying to ``upstream`` at ``now``, if any. Must be one cheap read."""
        ...


class MemoryExperimentStore:
    """A process-local store: for tests, and for a single local process without Firestore."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._experiments: dict[str, Experiment] = {}
        self._active: dict[str, str] = {}

    def start(self, spec: ExperimentSpec, *, now: float, created_by: str = "") -> Experiment:
        with self._lock:
            current = self._active_locked(spec.upstream, now)
            if current is not None:
                raise ExperimentConflict(spec.upstream, current.id)
            experiment = new_experiment(spec, now=now, created_by=created_by)
            self._experiments[experiment.id] = experiment
            self._active[spec.upstream] = experiment.id
            return experiment

    def get(self, experiment_id: str) -> Experiment:
        with self._lock:
            experiment = self._experiments.get(experiment_id)
        if experiment is None:
            raise ExperimentNotFound(experiment_id)
        return experiment

    def list(self, *, limit: int) -> list[Experiment]:
        with self._lock:
            ordered = sorted(self._experiments.values(), key=lambda e: e.started_at, reverse=True)
        return ordered[:limit]

    def stop(self, experiment_id: str, *, now: float) -> Experiment:
        with self._lock:
            experiment = self._experiments.get(experiment_id)
            if experiment is None:
                raise ExperimentNotFound(experiment_id)
            if experiment.is_active(now):
                experiment = replace(experiment, stopped_at=now)
                self._experiments[experiment_id] = experiment
            if self._active.get(experiment.upstream) == experiment_id:
                del self._active[experiment.upstream]
            return experiment

    def stop_matching(
        self, *, upstream: str | None, name: str | None, now: float
    ) -> tuple[Experiment, ...]:
        with self._lock:
            candidates = [self._active_locked(u, now) for u in list(self._active)]
        chosen = [
            e for e in candidates if e is not None and e.matches(upstream=upstream, name=name)
        ]
        return tuple(self.stop(e.id, now=now) for e in chosen)

    def active_for(self, upstream: str, *, now: float) -> Experiment | None:
        with self._lock:
            return self._active_locked(upstream, now)

    def _active_locked(self, upstream: str, now: float) -> Experiment | None:
        experiment_id = self._active.get(upstream)
        experiment = None if experiment_id is None else self._experiments.get(experiment_id)
        return experiment if experiment is not None and experiment.is_active(now) else None


@dataclass(frozen=True, slots=True)
class ExperimentChanged(events.Event):
    """An experiment was started or stopped (the journal of who ran what, when)."""

    kind: ClassVar[str] = "chaos.experiment"
    severity: ClassVar[str] = "WARNING"
    action: Literal["started", "stopped"]
    experiment_id: str
    upstream: str
    mode: str
    expires_at: float
    by: str = ""


@dataclass(frozen=True, slots=True)
class ExperimentStoreFailed(events.Event):
    """The store failed on the forwarding path; traffic for ``name`` passed without chaos."""

    kind: ClassVar[str] = "chaos.store_failed"
    severity: ClassVar[str] = "ERROR"
    error: str


class ActiveExperiments:
    """Per-instance view of each upstream's active experiment, cached for ``ttl_s`` seconds.

    Staleness bound: a start or stop made through another instance is seen here at most ``ttl_s``
    (plus one store read) later; one made through this instance is seen at once (the entry is
    invalidated). Expiry is exact: a cached experiment is re-checked against the clock on every
    lookup. With ``ttl_s == 0`` every lookup reads the store.
    """

    def __init__(
        self, store: ExperimentStore, *, clock: Clock = SYSTEM_CLOCK, ttl_s: float = 2.0
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._cache = TTLCache(max_entries=256, clock=clock, name="chaos.active_experiments")

    def lookup(self, upstream: str, *, ttl_s: float | None = None) -> Experiment | None:
        """The active experiment for ``upstream``, or None (also when the store fails).

        ``ttl_s`` (seconds) overrides the instance's TTL for this lookup, so a changed
        ``CHAOS_EXPERIMENT_CACHE_TTL_S`` applies from the next request on.
        """
        ttl = self.ttl_s if ttl_s is None else ttl_s
        loaded: Experiment | None
        if ttl <= 0:
            loaded = self._read(upstream)
        else:
            loaded = self._cache.get_or_load(upstream, ttl, lambda: self._read(upstream))
        if loaded is None or not loaded.is_active(self._clock.time()):
            return None
        return loaded

    def invalidate(self, upstream: str) -> None:
        """Forget the cached answer for ``upstream`` (after a start or stop here)."""
        self._cache.delete(upstream)

    def _read(self, upstream: str) -> Experiment | None:
        try:
            return self.store.active_for(upstream, now=self._clock.time())
        except StoreUnavailable as exc:
            # Fail open: chaos that cannot be looked up is no chaos. Cached like an answer, so a
            # store outage costs one failed read per upstream per TTL, not one per request.
            events.emit(ExperimentStoreFailed(upstream, str(exc)))
            return None


def _rfc3339(epoch_s: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
