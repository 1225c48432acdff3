"""Violations, recoveries, per-SLO alert state and run summaries in Firestore.

Nothing lost, nothing doubled:

* a violation's document id is ``<slo>--<window end>-<length>``, created inside a transaction
  only if absent, so a retried or concurrent run of the same window leaves exactly one record;
* the same transaction updates ``slo_state/<slo>`` (alerting?, since, severity, last alert) and
  decides whether the record needs an alert (new, escalated, or past the cooldown) — the
  record's ``alert_state`` starts ``pending`` or ``suppressed``;
* alerts go out from that outbox: a run claims a pending/failed record with a short lease
  (transaction), sends it, then marks it ``sent`` or ``failed``. A crash between sending and
  marking can resend once after the lease (at-least-once); nothing else sends twice.

Collections (``prefix`` default ``slo``): ``slo_violations``, ``slo_recoveries``, ``slo_state``,
``slo_runs``. Every method is idempotent and safe to retry as a whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.slo.burn_rate import SEVERITY_RANK
from shared.slo.compute import SloResult

T = TypeVar("T")

AlertState = Literal["pending", "sending", "sent", "failed", "suppressed", "abandoned", "expired"]
AlertKind = Literal["violation", "recovery"]
Classification = Literal["new", "ongoing", "recovered", "unchanged"]
DELIVERABLE = ("pending", "failed", "sending")


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording one SLO result did.

    ``classification``: ``new`` (first breach after normal), ``ongoing``, ``recovered``,
    ``unchanged``. ``duplicate`` is true when the window was already recorded (a retried or
    concurrent run); the classification is then the first run's.
    """

    slo: str
    classification: Classification
    doc_id: str | None = None
    alert_state: AlertState | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """A claimed outbox record: ``kind`` violation or recovery, its stored fields."""

    kind: AlertKind
    doc_id: str
    data: Mapping[str, Any]
    attempts: int


class FirestoreRecorder:
    """Records monitor runs in Firestore through ``client`` (a ``google.cloud.firestore.Client``).

    Times in seconds: ``cooldown_s`` between alerts of one ongoing violation (escalation to a
    higher severity alerts at once); ``lease_s`` a claim on an alert; ``max_age_s`` after which
    an undelivered alert expires; ``max_attempts`` deliveries before a record is abandoned.
    """

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "slo",
        clock: Clock = SYSTEM_CLOCK,
        cooldown_s: float = 3600.0,
        lease_s: float = 60.0,
        max_age_s: float = 86400.0,
        max_attempts: int = 20,
    ) -> None:
        self._client = client
        self._clock = clock
        self.cooldown_s = cooldown_s
        self.lease_s = lease_s
        self.max_age_s = max_age_s
        self.max_attempts = max_attempts
        self.violations = client.collection(f"{prefix}_violations")
        self.recoveries = client.collection(f"{prefix}_recoveries")
        self.states = client.collection(f"{prefix}_state")
        self.runs = client.collection(f"{prefix}_runs")

    # -- recording -------------------------------------------------------------------------

    def alerting_slos(self) -> set[str]:
        """Names of the SLOs currently marked as alerting (one query)."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        query = self.states.where(filter=FieldFilter("alerting", "==", True))
        return {snap.id for snap in query.stream()}

    def record(self, result: SloResult, run_id: str) -> Recorded:
        """Record one result: a violation if breached, a recovery if back to ok while alerting."""
        if result.breached:
            return self._in_transaction(lambda txn: self._record_breach(txn, result, run_id))
        if result.status == "ok":
            return self._in_transaction(lambda txn: self._record_recovery(txn, result, run_id))
        return Recorded(result.slo.name, "unchanged")

    def _read(self, txn: Any, collection: Any, result: SloResult) -> tuple[str, Any, Any, Any, Any]:
        """``(doc id, doc ref, state ref, existing doc, state dict)`` of ``result``'s window."""
        doc_id = f"{result.slo.name}--{result.window.key()}"
        ref = collection.document(doc_id)
        state_ref = self.states.document(result.slo.name)
        existing = ref.get(transaction=txn)
        state = state_ref.get(transaction=txn).to_dict() or {}
        return doc_id, ref, state_ref, existing, state

    def _record_breach(self, txn: Any, result: SloResult, run_id: str) -> Recorded:
        slo = result.slo
        doc_id, ref, state_ref, existing, state = self._read(txn, self.violations, result)
        if existing.exists:
            old = existing.to_dict() or {}
            return Recorded(slo.name, old.get("classification", "ongoing"), doc_id,
                            old.get("alert_state"), duplicate=True)  # fmt: skip
        now = self._clock.time()
        severity = result.severity or "warning"
        alerting = bool(state.get("alerting"))
        last_alert = _seconds(state.get("last_alert_at"))
        escalated = SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK.get(
            state.get("severity", ""), -1
        )
        cooled = last_alert is None or now - last_alert >= self.cooldown_s
        classification: Classification = "ongoing" if alerting else "new"
        alert_state: AlertState = (
            "pending" if (not alerting or escalated or cooled) else "suppressed"
        )
        txn.create(ref, self._violation_doc(result, run_id, classification, alert_state, now))
        txn.set(
            state_ref,
            {
                "slo": slo.name,
                "alerting": True,
                "since": state.get("since") if alerting else _dt(now),
                "severity": severity,
                "last_alert_at": _dt(now)
                if alert_state == "pending"
                else state.get("last_alert_at"),
                "last_violation": doc_id,
                "updated_at": _dt(now),
            },
        )
        return Recorded(slo.name, classification, doc_id, alert_state)

    def _record_recovery(self, txn: Any, result: SloResult, run_id: str) -> Recorded:
        slo = result.slo
        doc_id, ref, state_ref, existing, state = self._read(txn, self.recoveries, result)
        if existing.exists:
            old = existing.to_dict() or {}
            return Recorded(slo.name, "recovered", doc_id, old.get("alert_state"), duplicate=True)
        if not state.get("alerting"):
            return Recorded(slo.name, "unchanged")
        now = self._clock.time()
        # Announce a recovery only if the violation was announced (or is queued to be).
        alert_state: AlertState = "pending" if state.get("last_alert_at") else "suppressed"
        doc = {
            **self._base_doc(result, run_id, now),
            "kind": "recovery",
            "classification": "recovered",
            "violation_since": state.get("since"),
            "last_violation": state.get("last_violation"),
            "alert_state": alert_state,
            "alert_attempts": 0,
        }
        txn.create(ref, doc)
        txn.set(
            state_ref,
            {"alerting": False, "recovered_at": _dt(now), "severity": None, "updated_at": _dt(now)},
            merge=True,
        )
        return Recorded(slo.name, "recovered", doc_id, alert_state)

    def _base_doc(self, result: SloResult, run_id: str, now: float) -> dict[str, Any]:
        slo = result.slo
        return {
            "slo": slo.name,
            "service": slo.service,
            "sli": slo.sli,
            "method": slo.method,
            "objective": slo.objective_text(),
            "goal": slo.goal,
            "observed": result.value,
            "observed_text": result.observed_text(),
            "events": result.total,
            "status": result.status,
            "window_start": _dt(result.window.start),
            "window_end": _dt(result.window.end),
            "window": result.window.label,
            "burn_rate": result.burn_rate,
            "burn_rates": dict(result.burn_rates),
            "detected_at": _dt(now),
            "run_id": run_id,
        }

    def _violation_doc(
        self,
        result: SloResult,
        run_id: str,
        classification: Classification,
        alert_state: AlertState,
        now: float,
    ) -> dict[str, Any]:
        return {
            **self._base_doc(result, run_id, now),
            "kind": "violation",
            "classification": classification,
            "severity": result.severity or "warning",
            "alerts": [
                {
                    "rule": f.rule.name,
                    "severity": f.rule.severity,
                    "condition": f.rule.describe(),
                    "long_burn": f.long_burn,
                    "short_burn": f.short_burn,
                }
                for f in result.fired
            ],
            "alert_state": alert_state,
            "alert_attempts": 0,
        }

    # -- the alert outbox ------------------------------------------------------------------

    def deliverable(self, limit: int = 50) -> list[tuple[AlertKind, str, float]]:
        """Up to ``limit`` undelivered alerts as ``(kind, doc id, window end)``, violations
        first, oldest window first. Claim each with :meth:`claim` right before sending it."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        found: list[tuple[AlertKind, str, float]] = []
        kinds: tuple[tuple[AlertKind, Any], ...] = (
            ("violation", self.violations),
            ("recovery", self.recoveries),
        )
        for kind, collection in kinds:
            query = collection.where(filter=FieldFilter("alert_state", "in", list(DELIVERABLE)))
            for snap in query.limit(limit).stream():
                found.append((kind, snap.id, _seconds(snap.get("window_end")) or 0.0))
        found.sort(key=lambda f: (f[0] != "violation", f[2]))
        return found[:limit]

    def claim(self, kind: AlertKind, doc_id: str, run_id: str) -> PendingAlert | None:
        """Take the alert for ``run_id`` for ``lease_s`` seconds; None if it is not deliverable
        (already sent, expired, or being sent by another run)."""
        ref = (self.violations if kind == "violation" else self.recoveries).document(doc_id)
        claim = functools.partial(self._claim, ref=ref, kind=kind, run_id=run_id)
        return self._in_transaction(claim)

    def _claim(self, txn: Any, *, ref: Any, kind: AlertKind, run_id: str) -> PendingAlert | None:
        snap = ref.get(transaction=txn)
        data = snap.to_dict() if snap.exists else None
        if not data or data.get("alert_state") not in DELIVERABLE:
            return None
        now = self._clock.time()
        lease = _seconds(data.get("claim_until"))
        if (
            data["alert_state"] == "sending"
            and data.get("claimed_by") != run_id
            and lease is not None
            and lease > now
        ):
            return None  # another run is sending it right now
        detected = _seconds(data.get("detected_at")) or now
        if now - detected > self.max_age_s:
            txn.update(ref, {"alert_state": "expired", "claim_until": None})
            return None
        attempts = int(data.get("alert_attempts", 0)) + 1
        txn.update(
            ref,
            {
                "alert_state": "sending",
                "claimed_by": run_id,
                "claim_until": _dt(now + self.lease_s),
                "alert_attempts": attempts,
            },
        )
        return PendingAlert(kind, snap.id, data, attempts)

    def mark_sent(self, alert: PendingAlert) -> None:
        self._collection(alert).document(alert.doc_id).update(
            {"alert_state": "sent", "alert_sent_at": _dt(self._clock.time()),
             "claim_until": None, "alert_error": None}
        )  # fmt: skip

    def mark_failed(self, alert: PendingAlert, error: str) -> AlertState:
        """Record a failed delivery: ``failed`` (the next run retries it) or, after
        ``max_attempts`` deliveries, ``abandoned``. Returns the new state."""
        state: AlertState = "abandoned" if alert.attempts >= self.max_attempts else "failed"
        self._collection(alert).document(alert.doc_id).update(
            {"alert_state": state, "alert_error": error[:500], "claim_until": None}
        )
        return state

    def _collection(self, alert: PendingAlert) -> Any:
        return self.violations if alert.kind == "violation" else self.recoveries

    # -- run summaries ---------------------------------------------------------------------

    def write_summary(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Store the run's summary under ``slo_runs/<run_id>`` (overwrites on retry)."""
        self.runs.document(run_id).set({**summary, "written_at": _dt(self._clock.time())})

    # -- helpers ---------------------------------------------------------------------------

    def _in_transaction(self, fn: Callable[[Any], T]) -> T:
        from google.api_core import exceptions as gexc
        from google.cloud import firestore

        @firestore.transactional  # type: ignore[untyped-decorator,unused-ignore]
        def run(txn: Any) -> T:
            return fn(txn)

        try:
            result: T = run(self._client.transaction())
        except ValueError as exc:
            # Contention exhausted the client's attempts; surface it as retryable.
            if isinstance(exc.__cause__, gexc.Aborted):
                raise exc.__cause__ from exc
            raise
        return result


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _seconds(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None
