"""Experiments in Firestore, through :mod:`shared.gcp.firestore` (one client, bounded calls).

Two collections: ``chaos_experiments/{id}`` is the journal of every experiment, and
``chaos_active_experiments/{upstream}`` points at the one currently applying to an upstream (a copy
of it), so the forwarding path's lookup is a single document read that needs no index. Start and
stop are transactions over both, bounded in time as a whole.

Failures map to the API's answers: an unreachable or slow Firestore is :class:`StoreUnavailable`
(503); starts that keep aborting each other's transactions (many callers starting at once) are
:class:`StoreContended` (503 + ``Retry-After``), never a 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, Final, TypeVar

from shared.chaos.errors import (
    ExperimentConflict,
    ExperimentNotFound,
    StoreContended,
    StoreUnavailable,
)
from shared.chaos.experiments import Experiment, new_experiment
from shared.chaos.params import ExperimentSpec
from shared.gcp import firestore as fs

EXPERIMENTS: Final = "chaos_experiments"
ACTIVE: Final = "chaos_active_experiments"
DEFAULT_TIMEOUT_S: Final = 5.0
CONTENDED_RETRY_AFTER_S: Final = 1
#: Commit attempts of one start or stop. Few: a start that loses to a concurrent start of the same
#: upstream finds it active on the next attempt (409); more attempts only lengthen the wait.
MAX_ATTEMPTS: Final = 3

T = TypeVar("T")


class FirestoreExperimentStore:
    """The :class:`~shared.chaos.experiments.ExperimentStore` used when deployed."""

    def __init__(
        self,
        *,
        project: str | None = None,
        experiments: str = EXPERIMENTS,
        active: str = ACTIVE,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self._project = project
        self._experiments = experiments
        self._active = active
        self._timeout = timeout_s

    def start(self, spec: ExperimentSpec, *, now: float, created_by: str = "") -> Experiment:
        """Optimistic, not transactional: read the upstream's active document, then write it
        only if it is still absent (``create``) or unchanged since the read (``update`` with
        ``last_update_time``), in one batch with the journal entry.

        A transaction here takes a read lock on the document that every concurrent start also
        wants to write: 24 at once locked each other until all of them timed out. A batch with a
        precondition never waits for a lock; the loser of a race finds the winner on a re-read
        (409) or, if that one is already gone, is told to retry (503 + ``Retry-After``).
        """
        from google.api_core import exceptions as api_exceptions

        experiment = new_experiment(spec, now=now, created_by=created_by)
        document = dict(experiment.to_document())
        lost = False
        with _mapped("experiments.start"):
            db = self._db()
            active_ref = db.collection(self._active).document(spec.upstream)
            experiment_ref = db.collection(self._experiments).document(experiment.id)
            snapshot = active_ref.get(**fs.bounded(self._timeout))
            if snapshot.exists:
                current = Experiment.from_document(snapshot.to_dict())
                if current.is_active(now):
                    raise ExperimentConflict(spec.upstream, current.id)
            batch = db.batch()
            if snapshot.exists:
                unchanged = db.write_option(last_update_time=snapshot.update_time)
                batch.update(active_ref, document, option=unchanged)
            else:
                batch.create(active_ref, document)
            batch.set(experiment_ref, document)
            try:
                batch.commit(**fs.bounded(self._timeout))
            except (api_exceptions.Conflict, api_exceptions.FailedPrecondition):
                lost = True  # another start wrote the document after our read
        if lost:
            winner = self.active_for(spec.upstream, now=now)
            if winner is not None and winner.id != experiment.id:
                raise ExperimentConflict(spec.upstream, winner.id)
            if winner is None:
                raise StoreContended(
                    f"experiments store busy: a concurrent change to {spec.upstream!r} won; "
                    "try again",
                    retry_after_s=CONTENDED_RETRY_AFTER_S,
                )
        return experiment

    def get(self, experiment_id: str) -> Experiment:
        if not _valid_id(experiment_id):
            raise ExperimentNotFound(experiment_id)
        with _mapped("experiments.get"):
            ref = self._db().collection(self._experiments).document(experiment_id)
            snapshot = ref.get(**fs.bounded(self._timeout))
        if not snapshot.exists:
            raise ExperimentNotFound(experiment_id)
        return Experiment.from_document(snapshot.to_dict())

    def list(self, *, limit: int) -> list[Experiment]:
        from google.cloud import firestore

        with _mapped("experiments.list"):
            query = (
                self._db()
                .collection(self._experiments)
                .order_by("started_at", direction=firestore.Query.DESCENDING)
                .limit(limit)
            )
            snapshots = list(query.stream(**fs.bounded(self._timeout)))
        return [Experiment.from_document(s.to_dict()) for s in snapshots]

    def stop(self, experiment_id: str, *, now: float) -> Experiment:
        if not _valid_id(experiment_id):
            raise ExperimentNotFound(experiment_id)
        with _mapped("experiments.stop"):
            db = self._db()
            experiment_ref = db.collection(self._experiments).document(experiment_id)

            def stop_in(txn: Any) -> Experiment:
                snapshot = experiment_ref.get(transaction=txn, **txn.bounded())
                if not snapshot.exists:
                    raise ExperimentNotFound(experiment_id)
                experiment = Experiment.from_document(snapshot.to_dict())
                active_ref = db.collection(self._active).document(experiment.upstream)
                active = active_ref.get(transaction=txn, **txn.bounded())
                if experiment.is_active(now):
                    experiment = replace(experiment, stopped_at=now)
                    txn.update(experiment_ref, {"stopped_at": now})
                if active.exists and (active.to_dict() or {}).get("id") == experiment_id:
                    txn.delete(active_ref)
                return experiment

            return self._transaction(stop_in, "experiments.stop")

    def stop_matching(
        self, *, upstream: str | None, name: str | None, now: float
    ) -> tuple[Experiment, ...]:
        # The active collection holds at most one document per upstream: a small read.
        with _mapped("experiments.stop_matching"):
            collection = self._db().collection(self._active)
            snapshots = list(collection.stream(**fs.bounded(self._timeout)))
        current = (Experiment.from_document(s.to_dict()) for s in snapshots)
        chosen = [
            e for e in current if e.is_active(now) and e.matches(upstream=upstream, name=name)
        ]
        return tuple(self.stop(e.id, now=now) for e in chosen)

    def active_for(self, upstream: str, *, now: float) -> Experiment | None:
        with _mapped("experiments.active_for"):
            ref = self._db().collection(self._active).document(upstream)
            # The forwarding path: one attempt, no retries. A failure fails open upstream of here.
            snapshot = ref.get(retry=None, timeout=self._timeout)
        if not snapshot.exists:
            return None
        experiment = Experiment.from_document(snapshot.to_dict())
        return experiment if experiment.is_active(now) else None

    def _db(self) -> Any:
        return fs.client(self._project)

    def _transaction(self, fn: Callable[[Any], T], op: str) -> T:
        return fs.transaction(
            fn, op=op, db=self._db(), timeout_s=self._timeout, max_attempts=MAX_ATTEMPTS
        )


@contextlib.contextmanager
def _mapped(op: str) -> Iterator[None]:
    """Firestore's failures as this package's errors (the API's 503s)."""
    try:
        with fs.guarded(op):
            yield
    except fs.Contention as exc:
        raise StoreContended(
            f"experiments store busy: {exc}; try again", retry_after_s=CONTENDED_RETRY_AFTER_S
        ) from exc
    except fs.FirestoreError as exc:
        raise StoreUnavailable(f"experiments store failed: {exc}") from exc


def _valid_id(experiment_id: str) -> bool:
    # Our ids are uuid4 hex; anything else (slashes, "..", huge strings) is not a document id.
    return len(experiment_id) == 32 and all(c in "0123456789abcdef" for c in experiment_id)


__all__ = ["ACTIVE", "EXPERIMENTS", "FirestoreExperimentStore"]
