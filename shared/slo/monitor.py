"""One monitor run: measure and judge every SLO, record first, alert second, summarize.

The run's window ends on the last multiple of the config's ``window`` (5 minutes), so a retried
or concurrent run of the same scheduler tick records into the same documents.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.retries import retry
from shared.resilience.transient import is_transient
from shared.slo.alerting import SlackWebhook, recovery_message, violation_message
from shared.slo.compute import BackendLookup, SloResult, compute
from shared.slo.config import MonitorConfig
from shared.slo.errors import AlertDeliveryError, RecordError
from shared.slo.recording import FirestoreRecorder, Recorded
from shared.slo.window import Window, aligned_end

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to the alert outbox in one run."""

    configured: bool
    sent: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RunReport:
    """The outcome of one run, as the function answers it (see :meth:`to_json`)."""

    run_id: str
    window: Window
    results: tuple[SloResult, ...]
    recorded: Mapping[str, Recorded] = field(default_factory=dict)
    delivery: Delivery = field(default_factory=lambda: Delivery(configured=False))
    duration_ms: float = 0.0

    @property
    def source_transient_failure(self) -> bool:
        return any(r.transient_error for r in self.results)

    def to_json(self) -> dict[str, Any]:
        def names(pred: Callable[[SloResult], bool]) -> list[str]:
            return [r.slo.name for r in self.results if pred(r)]

        def classified(kind: str) -> list[str]:
            return [n for n, rec in self.recorded.items() if rec.classification == kind]

        delivered = set(self.delivery.sent) | set(self.delivery.failed)
        recorded = list(self.recorded.values())
        pending = [
            r.doc_id for r in recorded if r.alert_state == "pending" and r.doc_id not in delivered
        ]
        return {
            "run_id": self.run_id,
            "window": {
                "start": self.window.start_datetime().isoformat(),
                "end": self.window.end_datetime().isoformat(),
                "length": self.window.label,
            },
            "evaluated": len(self.results),
            "ok": names(lambda r: r.status == "ok" and not r.breached),
            "violations": {"new": classified("new"), "ongoing": classified("ongoing")},
            "recoveries": classified("recovered"),
            "no_data": names(lambda r: r.status == "no_data"),
            "errors": {r.slo.name: list(r.errors) for r in self.results if r.errors},
            "alerts": {
                "configured": self.delivery.configured,
                "sent": list(self.delivery.sent),
                "failed": list(self.delivery.failed),
                "pending": len(pending),
                "suppressed": sum(1 for r in recorded if r.alert_state == "suppressed"),
                "errors": list(self.delivery.errors),
            },
            "results": [r.to_json() for r in self.results],
            "duration_ms": round(self.duration_ms, 1),
        }


class Monitor:
    """Runs the SLO checks of ``config`` with the given source lookup, recorder and notifier.

    ``firestore_attempts`` bounds each Firestore step (first try included; backoff ``base`` s);
    when a step still fails the run raises :class:`RecordError` (the handler answers 503 so
    Cloud Scheduler retries). ``link`` is the alert messages' button target;
    ``delivery_budget_s`` bounds the seconds a run spends sending alerts.
    """

    def __init__(
        self,
        config: MonitorConfig,
        backend_for: BackendLookup,
        recorder: FirestoreRecorder,
        notifier: SlackWebhook | None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        link: str | None = None,
        firestore_attempts: int = 4,
        firestore_base_s: float = 0.2,
        max_workers: int = 8,
        delivery_budget_s: float = 60.0,
    ) -> None:
        self.config = config
        self._backend_for = backend_for
        self.recorder = recorder
        self.notifier = notifier
        self._clock = clock
        self._link = link
        self._attempts = firestore_attempts
        self._base = firestore_base_s
        self._workers = max_workers
        self._delivery_budget = delivery_budget_s

    def run(self, now: float | None = None) -> RunReport:
        """One run for the window ending at the last boundary before ``now`` (epoch seconds)."""
        started = time.perf_counter()
        now = self._clock.time() if now is None else now
        end = aligned_end(now, self.config.window_s)
        window = Window.ending_at(end, self.config.window_s)
        run_id = f"{window.key()}-{uuid.uuid4().hex[:8]}"
        results = tuple(
            compute(self.config.slos, self._backend_for, end, max_workers=self._workers)
        )
        recorded = self._record(results, run_id)
        delivery = self._deliver(run_id)
        report = RunReport(run_id, window, results, recorded, delivery,
                           (time.perf_counter() - started) * 1000)  # fmt: skip
        summary = report.to_json()
        summary.pop("results")
        self._firestore("write run summary", lambda: self.recorder.write_summary(run_id, summary))
        return report

    def _record(self, results: tuple[SloResult, ...], run_id: str) -> dict[str, Recorded]:
        alerting = self._firestore("read SLO states", self.recorder.alerting_slos)
        recorded: dict[str, Recorded] = {}
        for result in results:
            if result.breached or (result.status == "ok" and result.slo.name in alerting):
                recorded[result.slo.name] = self._firestore(
                    f"record {result.slo.name}",
                    functools.partial(self.recorder.record, result, run_id),
                )
        return recorded

    def _deliver(self, run_id: str) -> Delivery:
        """Send the outbox one alert at a time: claim, send, mark (leases stay short).

        Stops after ``delivery_budget_s`` seconds (retry waits included); what is left stays
        pending for the next run.
        """
        if self.notifier is None:
            return Delivery(configured=False)
        candidates = self._firestore("list alerts", self.recorder.deliverable)
        sent: list[str] = []
        failed: list[str] = []
        errors: list[str] = []
        started = self._clock.monotonic()
        for kind, doc_id, _ in candidates:
            if self._clock.monotonic() - started > self._delivery_budget:
                break
            claim = functools.partial(self.recorder.claim, kind, doc_id, run_id)
            alert = self._firestore("claim an alert", claim)
            if alert is None:
                continue
            build = violation_message if alert.kind == "violation" else recovery_message
            try:
                self.notifier.send(build(alert.data, self._link))
            except AlertDeliveryError as exc:
                failed.append(alert.doc_id)
                errors.append(f"{alert.doc_id}: {exc}")
                mark_failed = functools.partial(self.recorder.mark_failed, alert, str(exc))
                self._firestore("mark alert failed", mark_failed)
                continue
            sent.append(alert.doc_id)
            self._firestore("mark alert sent", functools.partial(self.recorder.mark_sent, alert))
        return Delivery(True, tuple(sent), tuple(failed), tuple(errors))

    def _firestore(self, step: str, fn: Callable[[], T]) -> T:
        try:
            return retry(fn, self._attempts, base=self._base, cap=5.0, name="slo.firestore",
                         clock=self._clock)  # fmt: skip
        except Exception as exc:
            if is_transient(exc) or _is_google_error(exc):
                raise RecordError(f"Firestore failed to {step}: {exc}") from exc
            raise


def _is_google_error(exc: BaseException) -> bool:
    import sys

    module = sys.modules.get("google.api_core.exceptions")
    return module is not None and isinstance(exc, module.GoogleAPIError)
