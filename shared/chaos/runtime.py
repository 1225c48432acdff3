"""The process-wide dependencies of the chaos handlers, built on first use and swappable in tests.

Nothing here is created at import: the Firestore client, the ``requests`` session and the Firebase
app are made the first time a request needs them. :func:`use_runtime` replaces any of them for the
duration of a block (fake clock, seeded randomness, in-memory store, stub verifier) and restores
the previous runtime after, in the manner of ``stamina.set_testing``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from shared.chaos.auth import FirebaseVerifier, TokenVerifier
from shared.chaos.delay import RandomSource, random_source
from shared.chaos.experiments import ActiveExperiments, ExperimentStore
from shared.chaos.forward import session
from shared.resilience.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    import requests


@dataclass(frozen=True, slots=True)
class Runtime:
    """What the handlers use: time, randomness, the experiments store and its cache, auth, HTTP."""

    clock: Clock
    random_source: Callable[[int | None], RandomSource]
    store: ExperimentStore
    active: ActiveExperiments
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
    """Real clock, unseeded randomness, Firestore, Firebase token checks, a pooled session."""
    from shared.chaos.firestore_store import FirestoreExperimentStore

    store = FirestoreExperimentStore()
    return Runtime(
        clock=SYSTEM_CLOCK,
        random_source=random_source,
        store=store,
        active=ActiveExperiments(store, clock=SYSTEM_CLOCK),
        verifier=FirebaseVerifier(),
        http=session,
    )


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
        new = replace(new, active=ActiveExperiments(new.store, clock=new.clock))
    with _lock:
        previous, _current = _current, new
    try:
        yield new
    finally:
        with _lock:
            _current = previous
