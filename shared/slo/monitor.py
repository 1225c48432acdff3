"""One monitor run: measure and judge every SLO, record first, alert second, summarize.

The run's window ends on the last multiple of the config's ``window`` (5 minutes), so a retried
or concurrent run of the same scheduler tick records into the same documents.

Firestore steps are not retried here: the recorder's calls already retry transient errors within
their own bound (:mod:`shared.gcp.firestore`), and a second layer of retries multiplied the time
a run took to give up. A step that still fails ends the run with :class:`RecordError`.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeVar

from shared.gcp import firestore as fs
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.slo.alerting import SlackWebhook, message_for
from shared.slo.compute import BackendLookup, SloResult, compute
from shared.slo.config import MonitorConfig
from shared.slo.errors import AlertDeliveryError, RecordError
from shared.slo.recording import FirestoreRecorder, Recorded, needs_recording
from shared.slo.records import Outcome, RunSummary
from shared.slo.window import Window, aligned_end

__all__ = ["Delivery", "Monitor", "RunReport", "RunStep", "outcome_of"]

T = TypeVar("T")
logger = logging.getLogger("shared.slo.monitor")

OUTCOMES: Final[tuple[Outcome, ...]] = ("ok", "violation", "no_data", "error")


def outcome_of(result: SloResult) -> Outcome:
    """What the run concluded about one SLO: its status, ``violation`` when a rule fired."""
    if result.status == "error":
        return "error"
    return "violation" if result.breached else result.status


class RunStep(Protocol):
    """Work that rides on each run after the SLOs are judged (e.g. the rollout gate).

    Called with this run's results and the run's instant (epoch seconds, not aligned); answers
    a JSON-ready summary kept under the run summary's ``steps.<name>``. A step bounds its own
    I/O; an exception it raises is reported in the summary and never fails the run.
    """

    @property
    def name(self) -> str: ...

    def __call__(self, results: tuple[SloResult, ...], now: float) -> Mapping[str, object]: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """What happened to the alert outbox in one run.

    ``deferred``: alerts left for a later run because Slack asked us to wait (``Retry-After``).
    """

    configured: bool
    sent: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
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
    steps: Mapping[str, object] = field(default_factory=dict)

    @property
    def blind(self) -> tuple[SloResult, ...]:
        """The SLOs some of whose windows could not be measured (the run answers 503)."""
        return tuple(r for r in self.results if r.errors)

    def to_json(self) -> RunSummary:
        def names(outcome: Outcome) -> list[str]:
            return [r.slo.name for r in self.results if outcome_of(r) == outcome]

        def classified(kind: str) -> list[str]:
            return [n for n, rec in self.recorded.items() if rec.classification == kind]

        delivered = set(self.delivery.sent) | set(self.delivery.failed)
        recorded = list(self.recorded.values())
        pending = [
            r.doc_id for r in recorded if r.alert_state == "pending" and r.doc_id not in delivered
        ]
        counts = dict.fromkeys(OUTCOMES, 0)
        for result in self.results:
            counts[outcome_of(result)] += 1
        return {
            "run_id": self.run_id,
            "window": {
                "start": self.window.start_datetime().isoformat(),
                "end": self.window.end_datetime().isoformat(),
                "length": self.window.label,
            },
            "evaluated": len(self.results),
            "outcomes": counts,
            "ok": names("ok"),
            "violations": {"new": classified("new"), "ongoing": classified("ongoing")},
            "recoveries": classified("recovered"),
            "no_data": names("no_data"),
            "no_data_alerts": classified("no_data"),
            "errors": {r.slo.name: list(r.errors) for r in self.blind},
            "alerts": {
                "configured": self.delivery.configured,
                "sent": list(self.delivery.sent),
                "failed": list(self.delivery.failed),
                "deferred": list(self.delivery.deferred),
                "pending": len(pending),
                "suppressed": sum(1 for r in recorded if r.alert_state == "suppressed"),
                "errors": list(self.delivery.errors),
            },
            "results": [r.to_json() for r in self.results],
            "steps": dict(self.steps),
            "duration_ms": round(self.duration_ms, 1),
        }


class Monitor:
    """Runs the SLO checks of ``config`` with the given source lookup, recorder and notifier.

    When a Firestore step fails the run raises :class:`RecordError` (the handler answers 503 so
    Cloud Scheduler retries). ``link`` is the alert messages' button target;
    ``delivery_budget_s`` bounds the seconds a run spends sending alerts, and ``run_budget_s``
    the whole run: a step that would start after it raises :class:`RecordError` (each step is
    bounded by the recorder's own timeout, so a run ends by about ``run_budget_s`` plus one
    step; the function's timeout is 120 s). Alert delivery stops early enough to leave the run
    summary its step.
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
        max_workers: int = 8,
        delivery_budget_s: float = 60.0,
        run_budget_s: float = 90.0,
        steps: Sequence[RunStep] = (),
    ) -> None:
        self.config = config
        self._backend_for = backend_for
        self.recorder = recorder
        self.notifier = notifier
        self._clock = clock
        self._link = link
        self._workers = max_workers
        self._delivery_budget = delivery_budget_s
        self._run_budget = run_budget_s
        self.steps = tuple(steps)

    def run(self, now: float | None = None) -> RunReport:
        """One run for the window ending at the last boundary before ``now`` (epoch seconds)."""
        started = time.perf_counter()
        deadline = self._clock.monotonic() + self._run_budget
        now = self._clock.time() if now is None else now
        end = aligned_end(now, self.config.window_s)
        window = Window.ending_at(end, self.config.window_s)
        run_id = f"{window.key()}-{uuid.uuid4().hex[:8]}"
        results = tuple(
            compute(self.config.slos, self._backend_for, end, max_workers=self._workers)
        )
        recorded = self._record(results, run_id, deadline)
        delivery = self._deliver(run_id, deadline)
        steps = self._run_steps(results, now, deadline)
        report = RunReport(run_id, window, results, recorded, delivery,
                           (time.perf_counter() - started) * 1000, steps)  # fmt: skip
        summary = report.to_json()
        write = functools.partial(self.recorder.write_summary, run_id, summary)
        self._store("write run summary", write, deadline)
        return report

    def _record(
        self, results: tuple[SloResult, ...], run_id: str, deadline: float
    ) -> dict[str, Recorded]:
        states = self._store("read SLO states", self.recorder.states_by_slo, deadline)
        recorded: dict[str, Recorded] = {}
        for result in results:
            if needs_recording(result, states.get(result.slo.name, {})):
                recorded[result.slo.name] = self._store(
                    f"record {result.slo.name}",
                    functools.partial(self.recorder.record, result, run_id),
                    deadline,
                )
        return recorded

    def _deliver(self, run_id: str, deadline: float) -> Delivery:
        """Send the outbox one alert at a time: claim, send, mark (leases stay short).

        Stops after ``delivery_budget_s`` seconds (retry waits included), or when Slack answers
        with ``Retry-After``: what is left stays pending for a later run.
        """
        if self.notifier is None:
            return Delivery(configured=False)
        candidates = self._store("list alerts", self.recorder.deliverable, deadline)
        sent: list[str] = []
        failed: list[str] = []
        deferred: list[str] = []
        errors: list[str] = []
        started = self._clock.monotonic()
        # Room for one alert (claim, mark) and the run summary after it.
        reserve = 3 * self.recorder.timeout_s
        for index, (kind, doc_id, _) in enumerate(candidates):
            if self._clock.monotonic() - started > self._delivery_budget:
                break
            if deadline - self._clock.monotonic() < reserve:
                break
            claim = functools.partial(self.recorder.claim, kind, doc_id, run_id)
            alert = self._store("claim an alert", claim, deadline)
            if alert is None:
                continue
            try:
                self.notifier.send(message_for(alert.kind, alert.data, self._link))
            except AlertDeliveryError as exc:
                failed.append(alert.doc_id)
                errors.append(f"{alert.doc_id}: {exc}")
                mark_failed = functools.partial(self.recorder.mark_failed, alert, str(exc),
                                                retry_after_s=exc.retry_after)  # fmt: skip
                self._store("mark alert failed", mark_failed, deadline)
                if exc.retry_after is not None:
                    # The webhook is rate limited, not this alert: leave the rest for later.
                    deferred.extend(d for _, d, _ in candidates[index + 1 :])
                    break
                continue
            sent.append(alert.doc_id)
            mark_sent = functools.partial(self.recorder.mark_sent, alert)
            self._store("mark alert sent", mark_sent, deadline)
        return Delivery(True, tuple(sent), tuple(failed), tuple(deferred), tuple(errors))

    def _run_steps(
        self, results: tuple[SloResult, ...], now: float, deadline: float
    ) -> dict[str, object]:
        """Each step's summary, or its error (a failing step never hides the SLO run)."""
        out: dict[str, object] = {}
        for step in self.steps:
            if self._clock.monotonic() >= deadline:
                out[step.name] = {"error": f"run budget of {self._run_budget:g} s spent"}
                continue
            try:
                out[step.name] = dict(step(results, now))
            except Exception as exc:  # reported in the summary; the SLO run stands
                logger.exception("slo_monitor step %s failed", step.name)
                out[step.name] = {"error": f"{type(exc).__name__}: {exc}"}
        return out

    def _store(self, step: str, fn: Callable[[], T], deadline: float) -> T:
        """``fn()``, a Firestore step; raises RecordError if it fails or starts too late."""
        if self._clock.monotonic() >= deadline:
            raise RecordError(f"run budget of {self._run_budget:g} s spent before: {step}")
        try:
            return fn()
        except fs.FirestoreError as exc:
            raise RecordError(f"Firestore failed to {step}: {exc}") from exc
