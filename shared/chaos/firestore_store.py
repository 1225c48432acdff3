"""Experiments in Firestore.

Every read is bounded by ``timeout_s`` (5 s) including retries; beginning and committing a
transaction use the library's own retry policy, which cannot be bounded per call.

Two collections: ``chaos_experiments/{id}`` is the journal of every experiment, and
``chaos_active_experiments/{upstream}`` points at the one currently applying to an upstream (a copy
of it), so the forwarding path's lookup is a single document read that needs no index. Start and
stop are transactions over both. The client is created on first use, never at import.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from shared.chaos.errors import ExperimentConflict, ExperimentNotFound, StoreUnavailable
from shared.chaos.experiments import Experiment, new_experiment
from shared.chaos.params import ExperimentSpec

EXPERIMENTS = "chaos_experiments"
ACTIVE = "chaos_active_experiments"


def default_client() -> Any:
    """A Firestore client for the ambient project (``FIRESTORE_EMULATOR_HOST`` is honoured)."""
    from google.cloud import firestore

    return firestore.Client()


class FirestoreExperimentStore:
    """The :class:`~shared.chaos.experiments.ExperimentStore` used when deployed."""

    def __init__(
        self,
        client_factory: Callable[[], Any] = default_client,
        *,
        experiments: str = EXPERIMENTS,
        active: str = ACTIVE,
        timeout_s: float = 5.0,
    ) -> None:
        self._factory = client_factory
        self._client: Any = None
        self._lock = threading.Lock()
        self._experiments = experiments
        self._active = active
        self._timeout = timeout_s

    def start(self, spec: ExperimentSpec, *, now: float, created_by: str = "") -> Experiment:
        from google.cloud import firestore

        client = self._db()
        experiment = new_experiment(spec, now=now, created_by=created_by)
        active_ref = client.collection(self._active).document(spec.upstream)
        experiment_ref = client.collection(self._experiments).document(experiment.id)

        @firestore.transactional
        def start_in(transaction: Any) -> None:
            snapshot = active_ref.get(transaction=transaction, **self._bounded())
            if snapshot.exists:
                current = Experiment.from_document(snapshot.to_dict())
                if current.is_active(now):
                    raise ExperimentConflict(spec.upstream, current.id)
            transaction.set(experiment_ref, experiment.to_document())
            transaction.set(active_ref, experiment.to_document())

        self._run(lambda: start_in(client.transaction()))
        return experiment

    def get(self, experiment_id: str) -> Experiment:
        if not _valid_id(experiment_id):
            raise ExperimentNotFound(experiment_id)
        ref = self._db().collection(self._experiments).document(experiment_id)
        snapshot = self._run(lambda: ref.get(**self._bounded()))
        if not snapshot.exists:
            raise ExperimentNotFound(experiment_id)
        return Experiment.from_document(snapshot.to_dict())

    def list(self, *, limit: int) -> list[Experiment]:
        from google.cloud import firestore

        query = (
            self._db()
            .collection(self._experiments)
            .order_by("started_at", direction=firestore.Query.DESCENDING)
            .limit(limit)
        )
        snapshots = self._run(lambda: list(query.stream(**self._bounded())))
        return [Experiment.from_document(s.to_dict()) for s in snapshots]

    def stop(self, experiment_id: str, *, now: float) -> Experiment:
        from google.cloud import firestore

        if not _valid_id(experiment_id):
            raise ExperimentNotFound(experiment_id)
        client = self._db()
        experiment_ref = client.collection(self._experiments).document(experiment_id)

        @firestore.transactional
        def stop_in(transaction: Any) -> Experiment:
            snapshot = experiment_ref.get(transaction=transaction, **self._bounded())
            if not snapshot.exists:
                raise ExperimentNotFound(experiment_id)
            experiment = Experiment.from_document(snapshot.to_dict())
            active_ref = client.collection(self._active).document(experiment.upstream)
            active = active_ref.get(transaction=transaction, **self._bounded())
            if experiment.is_active(now):
                experiment = replace(experiment, stopped_at=now)
                transaction.update(experiment_ref, {"stopped_at": now})
            if active.exists and (active.to_dict() or {}).get("id") == experiment_id:
                transaction.delete(active_ref)
            return experiment

        result: Experiment = self._run(lambda: stop_in(client.transaction()))
        return result

    def active_for(self, upstream: str, *, now: float) -> Experiment | None:
        ref = self._db().collection(self._active).document(upstream)
        # The forwarding path: one attempt, no retries. A failure fails open upstream of here.
        snapshot = self._run(lambda: ref.get(retry=None, timeout=self._timeout))
        if not snapshot.exists:
            return None
        experiment = Experiment.from_document(snapshot.to_dict())
        return experiment if experiment.is_active(now) else None

    def _bounded(self) -> dict[str, Any]:
        """Retry transient errors, but never past ``timeout_s`` in all (the library's default
        retry deadline is minutes, longer than the function's own timeout)."""
        from google.api_core.retry import Retry

        return {"retry": Retry(timeout=self._timeout), "timeout": self._timeout}

    def _db(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._run(self._factory)
        return self._client

    def _run(self, call: Callable[[], Any]) -> Any:
        """Run a Firestore call, turning driver failures into :class:`StoreUnavailable`."""
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        try:
            return call()
        except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, OSError) as exc:
            raise StoreUnavailable(
                f"experiments store failed: {type(exc).__name__}: {exc}"
            ) from exc


def _valid_id(experiment_id: str) -> bool:
    # Our ids are uuid4 hex; anything else (slashes, "..", huge strings) is not a document id.
    return len(experiment_id) == 32 and all(c in "0123456789abcdef" for c in experiment_id)
