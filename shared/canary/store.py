"""The rollouts in Firestore: ``rollout/<name>``, its ``transitions`` and ``heartbeats``.

* ``rollout/<name>``: :func:`shared.canary.rollout.to_document` plus ``updated_at``.
* ``rollout/<name>/transitions/<id>``: every decision of the gate (and the operator's start)
  with who/what decided it, the reasons and the numbers, the state it left, and the Slack
  outbox fields ``alert`` (``pending``/``sent``/``failed``/``none``), ``alert_attempts`` and
  ``alert_error``. Ids sort by time.
* ``alerts_pending`` on ``rollout/<name>``: set with an alerted transition, cleared once every
  alert of the rollout is delivered or out of attempts, so a rollout that completed or
  recovered in a run whose Slack post failed still gets its alert retried.
* ``rollout/<name>/heartbeats/<instance>``: what each serving instance last saw of its
  breakers (``{"at", "breakers": {name: {"state", "open_since"}}}``), for the monitor.

A decision is written in one transaction with its transition, and only over the generation it
was decided on (:class:`RolloutConflict` otherwise): a retried or concurrent monitor run cannot
apply a second decision to the same state. Firestore is reached through
:mod:`shared.gcp.firestore`: the client on first use, every call bounded by ``timeout_s``
(retries included), driver failures raised as :class:`StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

from shared.canary.errors import RolloutConflict, RolloutNotFound, StoreUnavailable
from shared.canary.gate import ALERTED, Decision, applied
from shared.canary.policy import DEFAULT_STAGES
from shared.canary.rollout import ACTIVE, Rollout, check_name, from_document, start, to_document
from shared.gcp import firestore as fs

COLLECTION: Final = "rollout"
TRANSITIONS: Final = "transitions"
HEARTBEATS: Final = "heartbeats"
#: Alert delivery attempts per transition before it is left as ``failed``.
MAX_ALERT_ATTEMPTS: Final = 5


def transition_id(at: float, generation: int, verdict: str) -> str:
    """A sortable, unique-per-decision id: milliseconds, the generation decided on, the verdict."""
    return f"{round(at * 1000):014d}-{generation:06d}-{verdict}"


class RolloutStore:
    """Rollout documents in ``collection`` of the client ``client_factory()`` returns."""

    def __init__(
        self,
        client_factory: Callable[[], Any] = fs.client,
        *,
        collection: str = COLLECTION,
        timeout_s: float = fs.DEFAULT_TIMEOUT_S,
    ) -> None:
        self._factory = client_factory
        self._collection = collection
        self.timeout_s = timeout_s

    # -- rollouts ---------------------------------------------------------------------------

    def start(
        self,
        name: str,
        *,
        service: str,
        stable: str,
        candidate: str,
        now: float,
        stages: Sequence[int] = DEFAULT_STAGES,
        slos: Sequence[str] = (),
        breakers: Sequence[str] = (),
        by: str = "operator",
    ) -> Rollout:
        """Begin rolling ``candidate`` out over ``stable``; a retried start changes nothing.

        Raises :class:`RolloutConflict` while another candidate is running.
        """
        check_name(name)
        ref = self._ref(name)

        def run(txn: Any) -> Rollout:
            snapshot = ref.get(transaction=txn, **txn.bounded())
            current = from_document(name, snapshot.to_dict()) if snapshot.exists else None
            if current is not None and current.status == "running":
                if current.candidate == candidate and current.stable == stable:
                    return current
                raise RolloutConflict(
                    f"rollout {name!r} is running {current.candidate!r} at {current.percent}%: "
                    "let it finish or halt it first"
                )
            new = start(
                name, service=service, stable=stable, candidate=candidate, now=now,
                stages=stages, slos=slos, breakers=breakers,
                generation=current.generation if current else 0,
            )  # fmt: skip
            self._write(txn, ref, new)
            record = {
                "verdict": "start", "by": by, "from_percent": 0, "to_percent": new.percent,
                "reasons": [f"{candidate} over {stable}, stages {list(new.stages)}"],
                "evidence": {}, "at": now, "stable": stable, "candidate": candidate,
                "percent_after": new.percent, "status_after": new.status,
                "generation": new.generation, "alert": "none", "alert_attempts": 0,
            }  # fmt: skip
            txn.set(ref.collection(TRANSITIONS).document(
                transition_id(now, new.generation, "start")), record)  # fmt: skip
            return new

        with _guarded("rollout.start"):
            return fs.transaction(run, op="rollout.start", db=self._db(), timeout_s=self.timeout_s)

    def get(self, name: str) -> Rollout:
        """The rollout now; :class:`RolloutNotFound` when there is none."""
        with _guarded("rollout.get"):
            snapshot = self._ref(name).get(**fs.bounded(self.timeout_s))
        if not snapshot.exists:
            raise RolloutNotFound(name)
        return from_document(name, snapshot.to_dict())

    def read(self, name: str, timeout_s: float) -> Rollout | None:
        """The rollout, None when there is none; one read bounded by ``timeout_s``."""
        with _guarded("rollout.read"):
            snapshot = self._ref(name).get(**fs.bounded(timeout_s))
        return from_document(name, snapshot.to_dict()) if snapshot.exists else None

    def active(self) -> list[Rollout]:
        """Rollouts the monitor acts on: running ones, halted ones awaiting recovery, and any
        with alerts still to deliver."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        rollouts = self._db().collection(self._collection)
        queries = (
            rollouts.where(filter=FieldFilter("status", "in", list(ACTIVE))),
            rollouts.where(filter=FieldFilter("alerts_pending", "==", True)),
        )
        found: dict[str, Rollout] = {}
        with _guarded("rollout.active"):
            for query in queries:
                for snapshot in query.stream(**fs.bounded(self.timeout_s)):
                    found[snapshot.id] = from_document(snapshot.id, snapshot.to_dict())
        return [found[name] for name in sorted(found)]

    def alerts_delivered(self, name: str) -> None:
        """Clear ``alerts_pending``: nothing of ``name`` is left to deliver."""
        with _guarded("rollout.alerts_delivered"):
            self._ref(name).update({"alerts_pending": False}, **fs.bounded(self.timeout_s))

    def apply(self, rollout: Rollout, decision: Decision, now: float) -> Rollout:
        """Record ``decision`` (taken on ``rollout``) and apply it, in one transaction.

        Raises :class:`RolloutConflict` when the rollout changed since it was read.
        """
        ref = self._ref(rollout.name)

        def run(txn: Any) -> Rollout:
            snapshot = ref.get(transaction=txn, **txn.bounded())
            if not snapshot.exists:
                raise RolloutNotFound(rollout.name)
            current = from_document(rollout.name, snapshot.to_dict())
            if current.generation != rollout.generation:
                raise RolloutConflict(
                    f"rollout {rollout.name!r} changed (generation {rollout.generation} -> "
                    f"{current.generation}) since it was judged: {decision.verdict} not applied"
                )
            new = applied(current, decision, now)
            after = new or current
            alerted = decision.verdict in ALERTED
            if new is not None:
                pending = alerted or bool(snapshot.to_dict().get("alerts_pending"))
                self._write(txn, ref, new, alerts_pending=pending)
            record = {
                "verdict": decision.verdict, "by": decision.by,
                "from_percent": decision.from_percent, "to_percent": decision.to_percent,
                "reasons": list(decision.reasons), "evidence": dict(decision.evidence),
                "at": now, "stable": after.stable, "candidate": rollout.candidate,
                "percent_after": after.percent, "status_after": after.status,
                "generation": after.generation,
                "alert": "pending" if alerted else "none",
                "alert_attempts": 0,
            }  # fmt: skip
            doc_id = transition_id(now, rollout.generation, decision.verdict)
            txn.set(ref.collection(TRANSITIONS).document(doc_id), record)
            return after

        with _guarded("rollout.apply"):
            return fs.transaction(run, op="rollout.apply", db=self._db(), timeout_s=self.timeout_s)

    # -- transitions and their alerts -------------------------------------------------------

    def transitions(self, name: str) -> list[dict[str, Any]]:
        """Every transition of ``name``, oldest first (``id`` added)."""
        query = self._ref(name).collection(TRANSITIONS).order_by("at")
        with _guarded("rollout.transitions"):
            snapshots = list(query.stream(**fs.bounded(self.timeout_s)))
        return [{"id": s.id, **s.to_dict()} for s in snapshots]

    def pending_alerts(self, name: str) -> list[dict[str, Any]]:
        """Transitions whose alert is not delivered yet (pending, or failed with attempts left),
        oldest first."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = (
            self._ref(name)
            .collection(TRANSITIONS)
            .where(filter=FieldFilter("alert", "in", ["pending", "failed"]))
        )
        with _guarded("rollout.pending_alerts"):
            snapshots = list(query.stream(**fs.bounded(self.timeout_s)))
        rows = [{"id": s.id, **s.to_dict()} for s in snapshots]
        return sorted(
            (r for r in rows if int(r.get("alert_attempts", 0)) < MAX_ALERT_ATTEMPTS),
            key=lambda r: str(r["id"]),
        )

    def mark_alert(self, name: str, transition: Mapping[str, Any], error: str | None) -> None:
        """Record one delivery attempt of a transition's alert: sent, or failed with ``error``."""
        update = {
            "alert": "sent" if error is None else "failed",
            "alert_attempts": int(transition.get("alert_attempts", 0)) + 1,
            "alert_error": error,
        }
        ref = self._ref(name).collection(TRANSITIONS).document(str(transition["id"]))
        with _guarded("rollout.mark_alert"):
            ref.update(update, **fs.bounded(self.timeout_s))

    # -- heartbeats -------------------------------------------------------------------------

    def beat(
        self,
        name: str,
        instance: str,
        breakers: Mapping[str, Mapping[str, object]],
        now: float,
        timeout_s: float,
    ) -> None:
        """This instance's breakers (``{name: {"state", "open_since"}}``), bounded."""
        ref = self._ref(name).collection(HEARTBEATS).document(instance)
        with _guarded("rollout.beat"):
            ref.set({"at": now, "breakers": {k: dict(v) for k, v in breakers.items()}},
                    **fs.bounded(timeout_s))  # fmt: skip

    def heartbeats(self, name: str, since: float) -> list[dict[str, Any]]:
        """Heartbeats of instances heard from at or after ``since`` (epoch seconds)."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self._ref(name).collection(HEARTBEATS).where(filter=FieldFilter("at", ">=", since))
        with _guarded("rollout.heartbeats"):
            return [dict(s.to_dict()) for s in query.stream(**fs.bounded(self.timeout_s))]

    # -- internals --------------------------------------------------------------------------

    def _write(self, txn: Any, ref: Any, rollout: Rollout, *, alerts_pending: bool = False) -> None:
        from google.cloud import firestore

        document = to_document(rollout)
        txn.set(ref, {**document, "alerts_pending": alerts_pending,
                      "updated_at": firestore.SERVER_TIMESTAMP})  # fmt: skip

    def _ref(self, name: str) -> Any:
        return self._db().collection(self._collection).document(name)

    def _db(self) -> Any:
        # No cache here: the default factory, fs.client, is already one client per project.
        with _guarded("rollout.client"):
            return self._factory()


@contextlib.contextmanager
def _guarded(op: str) -> Iterator[None]:
    """``fs.guarded(op)``, its failures raised as :class:`StoreUnavailable`."""
    try:
        with fs.guarded(op):
            yield
    except fs.FirestoreError as exc:
        raise StoreUnavailable(f"rollout store failed: {exc}") from exc
