"""Violations, recoveries, no-data alerts, per-SLO state and run summaries in Firestore.

Nothing lost, nothing doubled:

* a violation's document id is ``<slo>--<window end>-<length>``, created inside a transaction
  only if absent, so a retried or concurrent run of the same window leaves exactly one record;
* the same transaction updates ``slo_state/<slo>`` (alerting?, since, severity, last alert) and
  decides whether the record needs an alert (new, escalated, or past the cooldown) — the
  record's ``alert_state`` starts ``pending`` or ``suppressed``;
* a window without data counts once towards the SLO's ``no_data_alert_after`` (the state keeps
  the last window counted); reaching it files one ``no_data`` alert, and data coming back
  resets the count;
* alerts go out from that outbox: a run claims a pending/failed record with a short lease
  (transaction), sends it, then marks it ``sent`` or ``failed``. A crash between sending and
  marking can resend once after the lease (at-least-once); nothing else sends twice. A failure
  that came with ``Retry-After`` holds the record back until then, across runs.

Every call goes through :mod:`shared.gcp.firestore`: bounded by ``timeout_s`` (the client's own
retries included), failures raised as :class:`~shared.gcp.firestore.FirestoreError`. Every
method is idempotent and safe to retry as a whole.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar, cast

from shared.gcp import firestore as fs
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.slo.burn_rate import SEVERITY_RANK
from shared.slo.compute import SloResult
from shared.slo.records import (
    AlertKind,
    AlertRecord,
    AlertState,
    Classification,
    RunSummary,
    StateRecord,
)

__all__ = ["DELIVERABLE", "FirestoreRecorder", "PendingAlert", "Recorded", "needs_recording"]

T = TypeVar("T")

DELIVERABLE: Final = ("pending", "failed", "sending")
#: Delivery order: what is wrong before what is fixed.
_KIND_ORDER: Final[dict[AlertKind, int]] = {"violation": 0, "no_data": 1, "recovery": 2}


@dataclass(frozen=True, slots=True)
class Recorded:
    """What recording one SLO result did.

    ``classification``: ``new`` (first breach after normal), ``ongoing``, ``recovered``,
    ``no_data`` (a no-data alert was filed), ``unchanged``. ``duplicate`` is true when the
    window was already recorded (a retried or concurrent run); the classification is then the
    first run's.
    """

    slo: str
    classification: Classification
    doc_id: str | None = None
    alert_state: AlertState | None = None
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class PendingAlert:
    """A claimed outbox record: its kind, id, stored fields and delivery attempt number."""

    kind: AlertKind
    doc_id: str
    data: AlertRecord
    attempts: int


def needs_recording(result: SloResult, state: StateRecord) -> bool:
    """Whether ``result`` changes anything in Firestore given the SLO's stored ``state``."""
    if result.breached:
        return True
    if result.status == "ok":
        return bool(state.get("alerting") or state.get("no_data_windows"))
    if result.status == "no_data":
        return result.slo.no_data_alert_after > 0
    return False


class FirestoreRecorder:
    """Records monitor runs in Firestore through ``client`` (a ``google.cloud.firestore.Client``).

    Times in seconds: ``cooldown_s`` between alerts of one ongoing violation (escalation to a
    higher severity alerts at once); ``lease_s`` a claim on an alert; ``max_age_s`` after which
    an undelivered alert expires; ``max_attempts`` deliveries before a record is abandoned;
    ``timeout_s`` bounds each call (retries included).
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
        timeout_s: float = fs.DEFAULT_TIMEOUT_S,
    ) -> None:
        self._client = client
        self._clock = clock
        self.cooldown_s = cooldown_s
        self.lease_s = lease_s
        self.max_age_s = max_age_s
        self.max_attempts = max_attempts
        self.timeout_s = timeout_s
        self.violations = client.collection(f"{prefix}_violations")
        self.recoveries = client.collection(f"{prefix}_recoveries")
        self.no_data = client.collection(f"{prefix}_no_data")
        self.states = client.collection(f"{prefix}_state")
        self.runs = client.collection(f"{prefix}_runs")

    # -- recording -------------------------------------------------------------------------

    def states_by_slo(self) -> dict[str, StateRecord]:
        """Every SLO's stored state (one query; SLOs never seen are absent)."""
        with fs.guarded("slo.read_states"):
            snaps = list(self.states.stream(**fs.bounded(self.timeout_s)))
        return {snap.id: _as_state(snap.to_dict()) for snap in snaps}

    def record(self, result: SloResult, run_id: str) -> Recorded:
        """Record one result: a violation if breached, a recovery if back to ok while alerting,
        a no-data window if nothing was measured."""
        if result.breached:
            return self._transaction(functools.partial(self._record_breach, result=result,
                                                       run_id=run_id))  # fmt: skip
        if result.status == "ok":
            return self._transaction(functools.partial(self._record_recovery, result=result,
                                                       run_id=run_id))  # fmt: skip
        if result.status == "no_data" and result.slo.no_data_alert_after > 0:
            return self._transaction(functools.partial(self._record_no_data, result=result,
                                                       run_id=run_id))  # fmt: skip
        return Recorded(result.slo.name, "unchanged")

    def _record_breach(self, txn: Any, *, result: SloResult, run_id: str) -> Recorded:
        slo = result.slo
        doc_id = _doc_id(result)
        ref = self.violations.document(doc_id)
        existing = _read(txn, ref)
        if existing is not None:
            return Recorded(slo.name, existing.get("classification", "ongoing"), doc_id,
                            existing.get("alert_state"), duplicate=True)  # fmt: skip
        state_ref = self.states.document(slo.name)
        state = _as_state(_read(txn, state_ref))
        now = self._clock.time()
        severity = result.severity or "warning"
        alerting = bool(state.get("alerting"))
        last_alert = _seconds(state.get("last_alert_at"))
        escalated = SEVERITY_RANK.get(severity, 0) > SEVERITY_RANK.get(
            state.get("severity") or "", -1
        )
        cooled = last_alert is None or now - last_alert >= self.cooldown_s
        classification: Classification = "ongoing" if alerting else "new"
        alert_state: AlertState = (
            "pending" if (not alerting or escalated or cooled) else "suppressed"
        )
        txn.create(ref, self._violation_doc(result, run_id, classification, alert_state, now))
        new_state: StateRecord = {
            "slo": slo.name,
            "alerting": True,
            "since": state.get("since") if alerting else _dt(now),
            "severity": severity,
            "last_alert_at": _dt(now) if alert_state == "pending" else state.get("last_alert_at"),
            "last_violation": doc_id,
            "updated_at": _dt(now),
            **_data_seen(),
        }
        txn.set(state_ref, new_state)
        return Recorded(slo.name, classification, doc_id, alert_state)

    def _record_recovery(self, txn: Any, *, result: SloResult, run_id: str) -> Recorded:
        slo = result.slo
        doc_id = _doc_id(result)
        ref = self.recoveries.document(doc_id)
        existing = _read(txn, ref)
        if existing is not None:
            return Recorded(slo.name, "recovered", doc_id, existing.get("alert_state"),
                            duplicate=True)  # fmt: skip
        state_ref = self.states.document(slo.name)
        state = _as_state(_read(txn, state_ref))
        now = self._clock.time()
        if not state.get("alerting"):
            if state.get("no_data_windows"):
                txn.set(state_ref, {**_data_seen(), "updated_at": _dt(now)}, merge=True)
            return Recorded(slo.name, "unchanged")
        # Announce a recovery only if the violation was announced (or is queued to be).
        alert_state: AlertState = "pending" if state.get("last_alert_at") else "suppressed"
        doc: AlertRecord = {
            **self._base_doc(result, run_id, now),
            "kind": "recovery",
            "classification": "recovered",
            "violation_since": state.get("since"),
            "last_violation": state.get("last_violation"),
            "alert_state": alert_state,
            "alert_attempts": 0,
        }
        txn.create(ref, doc)
        update: StateRecord = {"alerting": False, "recovered_at": _dt(now), "severity": None,
                               "updated_at": _dt(now), **_data_seen()}  # fmt: skip
        txn.set(state_ref, update, merge=True)
        return Recorded(slo.name, "recovered", doc_id, alert_state)

    def _record_no_data(self, txn: Any, *, result: SloResult, run_id: str) -> Recorded:
        """Count this window once; at ``no_data_alert_after`` windows in a row, file the alert."""
        slo = result.slo
        key = result.window.key()
        doc_id = _doc_id(result)
        ref = self.no_data.document(doc_id)
        state_ref = self.states.document(slo.name)
        state = _as_state(_read(txn, state_ref))
        if state.get("no_data_window") == key:  # this window was counted by an earlier run
            existing = _read(txn, ref)
            if existing is not None:
                return Recorded(slo.name, "no_data", doc_id, existing.get("alert_state"),
                                duplicate=True)  # fmt: skip
            return Recorded(slo.name, "unchanged", duplicate=True)
        now = self._clock.time()
        windows = int(state.get("no_data_windows") or 0) + 1
        since = state.get("no_data_since") or _dt(result.window.start)
        file_alert = windows >= slo.no_data_alert_after and not state.get("no_data_alerted")
        update: StateRecord = {
            "slo": slo.name,
            "no_data_windows": windows,
            "no_data_window": key,
            "no_data_since": since,
            "no_data_alerted": bool(state.get("no_data_alerted")) or file_alert,
            "updated_at": _dt(now),
        }
        if file_alert:
            doc: AlertRecord = {
                **self._base_doc(result, run_id, now),
                "kind": "no_data",
                "classification": "no_data",
                "severity": "ticket",
                "no_data_since": since,
                "no_data_windows": windows,
                "alert_state": "pending",
                "alert_attempts": 0,
            }
            txn.create(ref, doc)
        txn.set(state_ref, update, merge=True)
        if file_alert:
            return Recorded(slo.name, "no_data", doc_id, "pending")
        return Recorded(slo.name, "unchanged")

    def _base_doc(self, result: SloResult, run_id: str, now: float) -> AlertRecord:
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
    ) -> AlertRecord:
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
        """Up to ``limit`` undelivered alerts as ``(kind, doc id, window end)``: violations,
        then no-data, then recoveries, oldest window first; those held back by a ``Retry-After``
        are left out. Claim each with :meth:`claim` right before sending it."""
        from google.cloud.firestore_v1.base_query import FieldFilter

        now = self._clock.time()
        found: list[tuple[AlertKind, str, float]] = []
        for kind in _KIND_ORDER:
            query = self._collection(kind).where(
                filter=FieldFilter("alert_state", "in", list(DELIVERABLE))
            )
            with fs.guarded("slo.list_alerts"):
                snaps = list(query.limit(limit).stream(**fs.bounded(self.timeout_s)))
            for snap in snaps:
                data = cast(AlertRecord, snap.to_dict() or {})
                held = _seconds(data.get("not_before"))
                if held is not None and held > now:
                    continue
                found.append((kind, snap.id, _seconds(data.get("window_end")) or 0.0))
        found.sort(key=lambda f: (_KIND_ORDER[f[0]], f[2]))
        return found[:limit]

    def claim(self, kind: AlertKind, doc_id: str, run_id: str) -> PendingAlert | None:
        """Take the alert for ``run_id`` for ``lease_s`` seconds; None if it is not deliverable
        (already sent, expired, held back by ``Retry-After``, or being sent by another run)."""
        ref = self._collection(kind).document(doc_id)
        return self._transaction(functools.partial(self._claim, ref=ref, kind=kind, run_id=run_id))

    def _claim(self, txn: Any, *, ref: Any, kind: AlertKind, run_id: str) -> PendingAlert | None:
        data = _read(txn, ref)
        if not data or data.get("alert_state") not in DELIVERABLE:
            return None
        now = self._clock.time()
        lease = _seconds(data.get("claim_until"))
        if (
            data.get("alert_state") == "sending"
            and data.get("claimed_by") != run_id
            and lease is not None
            and lease > now
        ):
            return None  # another run is sending it right now
        not_before = _seconds(data.get("not_before"))
        if not_before is not None and not_before > now:
            return None  # Slack asked us to wait
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
        return PendingAlert(kind, ref.id, data, attempts)

    def mark_sent(self, alert: PendingAlert) -> None:
        update: AlertRecord = {
            "alert_state": "sent",
            "alert_sent_at": _dt(self._clock.time()),
            "claim_until": None,
            "alert_error": None,
            "not_before": None,
        }
        self._update(alert, update)

    def mark_failed(
        self, alert: PendingAlert, error: str, *, retry_after_s: float | None = None
    ) -> AlertState:
        """Record a failed delivery: ``failed`` (a later run retries it, not before
        ``retry_after_s`` seconds when Slack said so) or, after ``max_attempts`` deliveries,
        ``abandoned``. Returns the new state."""
        state: AlertState = "abandoned" if alert.attempts >= self.max_attempts else "failed"
        not_before = None if retry_after_s is None else _dt(self._clock.time() + retry_after_s)
        update: AlertRecord = {"alert_state": state, "alert_error": error[:500],
                               "claim_until": None, "not_before": not_before}  # fmt: skip
        self._update(alert, update)
        return state

    def _update(self, alert: PendingAlert, update: AlertRecord) -> None:
        ref = self._collection(alert.kind).document(alert.doc_id)
        with fs.guarded("slo.update_alert"):
            ref.update(dict(update), **fs.bounded(self.timeout_s))

    def _collection(self, kind: AlertKind) -> Any:
        if kind == "violation":
            return self.violations
        return self.no_data if kind == "no_data" else self.recoveries

    # -- run summaries ---------------------------------------------------------------------

    def write_summary(self, run_id: str, summary: RunSummary) -> None:
        """Store the run's summary (without per-SLO results) under ``slo_runs/<run_id>``."""
        stored = {k: v for k, v in summary.items() if k != "results"}
        with fs.guarded("slo.write_summary"):
            self.runs.document(run_id).set(
                {**stored, "written_at": _dt(self._clock.time())}, **fs.bounded(self.timeout_s)
            )

    # -- helpers ---------------------------------------------------------------------------

    def _transaction(self, fn: Callable[[Any], T]) -> T:
        return fs.transaction(fn, op="slo.record", db=self._client, timeout_s=self.timeout_s)


def _read(txn: Any, ref: Any) -> AlertRecord | None:
    """The document at ``ref`` read in ``txn`` (its deadline), or None if absent."""
    snap = ref.get(transaction=txn, **txn.bounded())
    return cast(AlertRecord, snap.to_dict()) if snap.exists else None


def _as_state(data: Mapping[str, object] | None) -> StateRecord:
    return cast(StateRecord, dict(data or {}))


def _data_seen() -> StateRecord:
    """State fields for a window that had data: the no-data count starts again."""
    return {"no_data_windows": 0, "no_data_window": None, "no_data_since": None,
            "no_data_alerted": False}  # fmt: skip


def _doc_id(result: SloResult) -> str:
    return f"{result.slo.name}--{result.window.key()}"


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _seconds(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None
