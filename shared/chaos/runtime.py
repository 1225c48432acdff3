"""The process-wide dependencies of the chaos handlers, built on first use and swappable in tests.

Nothing here is created at import: the Firestore client, the ``requests`` session and the Firebase
app are made the first time a request needs them. :func:`use_runtime` replaces any of them for the
duration of a block (fake clock, seeded randomness, in-memory store, stub verifier) and restores
the previous runtime after, in the manner of ``stamina.set_testing``.

The default experiments store and its cache are deferred: their modules (and the resilience
events they pull in) are imported on the first call that needs them, so ``chaos_delay``, which
never reads experiments, does not pay for them at start-up or on its first request.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from shared.chaos.auth import FirebaseVerifier, TokenVerifier
from shared.chaos.delay import RandomSource, random_source
from shared.resilience.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    import requests

    from shared.chaos.experiments import ActiveExperiments, Experiment, ExperimentStore
    from shared.chaos.params import ExperimentSpec


class ExperimentCache(Protocol):
    """What handlers use of :class:`~shared.chaos.experiments.ActiveExperiments`."""

    def lookup(self, upstream: str, *, ttl_s: float | None = None) -> Experiment | None: ...

    def invalidate(self, upstream: str) -> None: ...


class _DeferredStore:
    """The Firestore experiments store, imported and made on first use."""

    def __init__(self) -> None:
        self._store: ExperimentStore | None = None
        self._lock = threading.Lock()

    def _real(self) -> ExperimentStore:
        if self._store is None:
            with self._lock:
                if self._store is None:
                    from shared.chaos.firestore_store import FirestoreExperimentStore

                    self._store = FirestoreExperimentStore()
        return self._store

    def start(self, spec: ExperimentSpec, *, now: float, created_by: str = "") -> Experiment:
        return self._real().start(spec, now=now, created_by=created_by)

    def get(self, experiment_id: str) -> Experiment:
        return self._real().get(experiment_id)

    def list(self, *, limit: int) -> list[Experiment]:
        return self._real().list(limit=limit)

    def stop(self, experiment_id: str, *, now: float) -> Experiment:
        return self._real().stop(experiment_id, now=now)

    def stop_matching(
        self, *, upstream: str | None, name: str | None, now: float
    ) -> tuple[Experiment, ...]:
        return self._real().stop_matching(upstream=upstream, name=name, now=now)

    def active_for(self, upstream: str, *, now: float) -> Experiment | None:
        return self._real().active_for(upstream, now=now)


class _DeferredCache:
    """An :class:`~shared.chaos.experiments.ActiveExperiments` made on first use."""

    def __init__(self, store: ExperimentStore, clock: Clock) -> None:
        self._args = (store, clock)
        self._cache: ActiveExperiments | None = None
        self._lock = threading.Lock()

    def _real(self) -> ActiveExperiments:
        if self._cache is None:
            with self._lock:
                if self._cache is None:
                    from shared.chaos.experiments import ActiveExperiments

                    store, clock = self._args
                    self._cache = ActiveExperiments(store, clock=clock)
        return self._cache

    def lookup(self, upstream: str, *, ttl_s: float | None = None) -> Experiment | None:
        return self._real().lookup(upstream, ttl_s=ttl_s)

    def invalidate(self, upstream: str) -> None:
        self._real().invalidate(upstream)


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the handlers use: time, randomness, the experiments store and its cache, auth, HTTP."""

    clock: Clock
    random_source: Callable[[int | None], RandomSource]
    store: ExperimentStore
    active: ExperimentCache
    verifier: TokenVerifier
    http: Callable[[], requests.Session]


_lock = threading.Lock()
_current: Runtime | None = None


def runtime() -> Runtime:
    """The current runtime, building the default one on first call."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = default_runtime()
    return _current


def default_runtime() -> Runtime:
    """Real clock, unseeded randomness, Firestore, Firebase token checks, a pooled session.

    The store and its cache are made (and their modules imported) on first use.
    """
    store = _DeferredStore()
    return Runtime(
        clock=SYSTEM_CLOCK,
        random_source=random_source,
        store=store,
        active=_DeferredCache(store, SYSTEM_CLOCK),
        verifier=FirebaseVerifier(),
        http=_session,
    )


def _session() -> requests.Session:
    """:func:`shared.chaos.forward.session`, imported on first call."""
    from shared.chaos.forward import session

    return session()


@contextlib.contextmanager
def use_runtime(
    *,
    clock: Clock | None = None,
    random_source: Callable[[int | None], RandomSource] | None = None,
    store: ExperimentStore | None = None,
    verifier: TokenVerifier | None = None,
    http: Callable[[], requests.Session] | None = None,
) -> Iterator[Runtime]:
    """Within the block, handlers use a runtime with the given parts replaced.

    A new store or clock gets a fresh :class:`ActiveExperiments` cache over them.
    """
    global _current
    base = runtime()
    changes: dict[str, object] = {}
    if clock is not None:
        changes["clock"] = clock
    if random_source is not None:
        changes["random_source"] = random_source
    if store is not None:
        changes["store"] = store
    if verifier is not None:
        changes["verifier"] = verifier
    if http is not None:
        changes["http"] = http
    new = replace(base, **changes)  # type: ignore[arg-type]
    if store is not None or clock is not None:
        from shared.chaos.experiments import ActiveExperiments

        new = replace(new, active=ActiveExperiments(new.store, clock=new.clock))
    with _lock:
        previous, _current = _current, new
    try:
        yield new
    finally:
        with _lock:
            _current = previous
