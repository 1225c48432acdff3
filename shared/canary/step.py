"""The rollout gate as a step of each ``slo_monitor`` run (:class:`RolloutStep`).

Why a step of the monitor rather than its own Scheduler job: it needs this run's SLO verdicts
(a page-level burn halts a rollout, a healthy SLO counts toward recovery), it reads the same
request data the SLOs read over the same schedule, and it alerts through the same Slack
webhook; one job means one schedule, one set of credentials and no race between two readers of
the same windows.

Each run, for every active rollout: read the breakers' heartbeats, compare the cohorts over the
stage's window (running rollouts), decide (:func:`shared.canary.gate.decide`), apply the
decision with its transition in one transaction, then send the pending alerts of that rollout.
One rollout's failure is reported in the summary and never stops the others.

Settings (read once per instance, every problem reported together):
``ROLLOUTS`` (on; ``off`` leaves the step out), ``ROLLOUT_CONFIG`` (the policy YAML; built-in
defaults without it), ``ROLLOUT_SOURCE`` (``local``: the SQLite request store, the default
when ``LOCAL_METRICS_DB`` is set; ``cloud_monitoring`` otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from shared.canary.alerts import transition_message
from shared.canary.compare import compare_errors, compare_latency
from shared.canary.errors import CanaryConfigError, CanaryError, RolloutConflict
from shared.canary.gate import Comparison, Signals, SloSignal, decide
from shared.canary.policy import RolloutPolicy, load_policy
from shared.canary.rollout import Rollout
from shared.canary.signals import breakers_open, slo_signals
from shared.canary.sources import CohortSource
from shared.canary.store import RolloutStore
from shared.settings import Env, Problem, SettingsError

if TYPE_CHECKING:
    from shared.slo.alerting import SlackWebhook
    from shared.slo.backends.cloud_monitoring import CloudMonitoringBackend
    from shared.slo.compute import SloResult
    from shared.slo.service import StepContext

logger = logging.getLogger("shared.canary.step")

Source = Literal["local", "cloud_monitoring"]


class RolloutStep:
    """Judges every active rollout once per monitor run; see the module docstring."""

    name = "rollouts"

    def __init__(
        self,
        store: RolloutStore,
        source: CohortSource,
        policy: RolloutPolicy,
        notifier: SlackWebhook | None,
        *,
        link: str | None = None,
    ) -> None:
        self.store = store
        self.source = source
        self.policy = policy
        self.notifier = notifier
        self._link = link

    def __call__(self, results: tuple[SloResult, ...], now: float) -> Mapping[str, object]:
        slos = slo_signals(results)
        rollouts = self.store.active()
        judged: dict[str, object] = {}
        for rollout in rollouts:
            try:
                judged[rollout.name] = self.judge(rollout, slos, now)
            except CanaryError as exc:
                logger.error("rollout %s not judged: %s", rollout.name, exc)
                judged[rollout.name] = {"error": str(exc)}
        return {"active": len(rollouts), "rollouts": judged}

    def judge(
        self, rollout: Rollout, slos: Mapping[str, SloSignal], now: float
    ) -> dict[str, object]:
        """Decide for one rollout, apply, alert; its summary."""
        beats = self.store.heartbeats(rollout.name, now - self.policy.heartbeat_stale_s)
        signals = Signals(slos, breakers_open(beats, now))
        comparison = self.compare(rollout, now) if rollout.status == "running" else None
        decision = decide(rollout, signals, comparison, self.policy, now)
        if decision is None:  # complete or recovered: here for an alert still to deliver
            return {"verdict": None, "status": rollout.status, "alerts": self.deliver(rollout.name)}
        try:
            after = self.store.apply(rollout, decision, now)
        except RolloutConflict as exc:
            return {"verdict": "skipped", "reason": str(exc)}
        return {
            "verdict": decision.verdict,
            "by": decision.by,
            "from_percent": decision.from_percent,
            "percent": after.percent,
            "status": after.status,
            "stable": after.stable,
            "candidate": rollout.candidate,
            "reasons": list(decision.reasons),
            "evidence": dict(decision.evidence),
            "alerts": self.deliver(rollout.name),
        }

    def compare(self, rollout: Rollout, now: float) -> Comparison:
        """Candidate versus stable since the stage began (at most ``stage_max_window_s``)."""
        start = max(rollout.stage_started_at, now - self.policy.stage_max_window_s)
        candidate = self.source.sample(rollout, "candidate", start, now)
        stable = self.source.sample(rollout, "stable", start, now)
        policy = self.policy.comparison
        return Comparison(
            start, now,
            compare_latency(candidate, stable, policy), compare_errors(candidate, stable, policy),
            candidate.requests, stable.requests,
        )  # fmt: skip

    def deliver(self, name: str) -> dict[str, list[str]]:
        """Send the rollout's undelivered transition alerts, oldest first."""
        from shared.slo.errors import AlertDeliveryError

        sent: list[str] = []
        failed: list[str] = []
        if self.notifier is None:
            return {"sent": sent, "failed": failed}
        pending = self.store.pending_alerts(name)
        for transition in pending:
            error: str | None = None
            try:
                self.notifier.send(transition_message(name, transition, self._link))
            except AlertDeliveryError as exc:
                error = str(exc)
            self.store.mark_alert(name, transition, error)
            (sent if error is None else failed).append(str(transition["id"]))
        if pending and (not failed or not self.store.pending_alerts(name)):
            self.store.alerts_delivered(name)
        return {"sent": sent, "failed": failed}


@dataclass(frozen=True, slots=True)
class StepSettings:
    """The step's settings (see the module docstring)."""

    enabled: bool
    policy: RolloutPolicy
    source: Source


def load_step_settings(env: Env) -> StepSettings:
    """Read and validate the step's settings; SettingsError lists every bad one."""
    enabled = env.flag("ROLLOUTS", True)
    path = env.text("ROLLOUT_CONFIG")
    default: Source = "local" if env.text("LOCAL_METRICS_DB") else "cloud_monitoring"
    source = env.choice("ROLLOUT_SOURCE", default, ("local", "cloud_monitoring"))
    policy = RolloutPolicy()
    if path:
        try:
            policy = load_policy(path)
        except CanaryConfigError as exc:
            env.problems.append(Problem("ROLLOUT_CONFIG", path, f"a valid rollout policy ({exc})"))
    env.check()
    return StepSettings(enabled, policy, source)


def rollout_step(
    context: StepContext, environ: Mapping[str, str] | None = None
) -> RolloutStep | None:
    """The monitor's rollout step (None when ``ROLLOUTS`` is off); a StepFactory."""
    settings = load_step_settings(Env(environ))
    if not settings.enabled:
        return None
    client = context.firestore_client
    store = RolloutStore(lambda: client, timeout_s=context.settings.firestore_timeout_s)
    return RolloutStep(store, _source(settings.source, context), settings.policy,
                       context.notifier, link=context.link)  # fmt: skip


def _source(kind: Source, context: StepContext) -> CohortSource:
    from shared.canary.sources import LocalCohorts, MonitoringCohorts

    settings = context.settings
    if kind == "local":
        from shared.slo.local_store import LocalStore

        if not settings.local_metrics_db:
            allowed = "cloud_monitoring, or local with LOCAL_METRICS_DB set"
            raise SettingsError((Problem("ROLLOUT_SOURCE", "local", allowed),))
        return LocalCohorts(LocalStore(settings.local_metrics_db))

    def backend() -> CloudMonitoringBackend:
        from google.cloud import monitoring_v3

        from shared.slo.backends.cloud_monitoring import CloudMonitoringBackend

        if not settings.project_id:
            raise CanaryConfigError("set GOOGLE_CLOUD_PROJECT: the project of the rollout metrics")
        client: Any = monitoring_v3.MetricServiceClient()
        return CloudMonitoringBackend(
            client, settings.project_id, timeout=settings.monitoring_timeout_s
        )

    return MonitoringCohorts(backend)
