"""The HTTP side of the monitor: one Monitor per instance, built on first request, JSON out.

Settings and the SLO file are read once. A bad SLO file (or bad settings) is logged once and
every request then answers a JSON 500 ``config_invalid`` naming the problems, never a trace.

A run that could not measure every SLO answers 503 with its summary and logs which and why:
Cloud Scheduler then shows the failure and retries, instead of a 200 while monitoring is blind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.lazy import Memo
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.settings import SettingsError
from shared.slo.errors import ConfigInvalid, RecordError, SloError, SourceError

if TYPE_CHECKING:
    from shared.slo.alerting import SlackWebhook
    from shared.slo.monitor import Monitor, RunStep
    from shared.slo.settings import Settings

# The monitor, its backends and settings are imported by the first request that runs the monitor
# (about 70 ms), not with this module: a request the handler refuses needs none of them.

logger = logging.getLogger("shared.slo.service")

_lock = threading.Lock()
_monitor: Monitor | None = None
_config_error: ConfigInvalid | None = None
_clock: Clock = SYSTEM_CLOCK


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a run step may share with the monitor it rides on."""

    settings: Settings
    firestore_client: Any
    notifier: SlackWebhook | None
    clock: Clock
    link: str | None


#: Builds a run step for a monitor (None: the step is off); registered by the function module.
StepFactory = Callable[[StepContext], "RunStep | None"]
_step_factories: tuple[StepFactory, ...] = ()


def use_steps(*factories: StepFactory) -> None:
    """Steps the next Monitor built runs after each SLO run (the function module registers the
    rollout gate here, so this package never imports the packages above it)."""
    global _step_factories
    with _lock:
        _step_factories = tuple(factories)


def build_monitor(
    settings: Settings,
    *,
    firestore_client: Any = None,
    clock: Clock = SYSTEM_CLOCK,
    steps: Sequence[StepFactory] | None = None,
) -> Monitor:
    """A Monitor wired from ``settings``: SLO file, sources, Firestore, Slack (if configured)."""
    from shared.slo.alerting import SlackWebhook
    from shared.slo.backends import Backend, open_backend
    from shared.slo.config import load_config
    from shared.slo.monitor import Monitor
    from shared.slo.recording import FirestoreRecorder
    from shared.slo.secrets import webhook_url_source

    config = load_config(settings.config_path)

    def open_named(name: str) -> Backend:
        try:
            return open_backend(config.backends[name], settings)
        except SloError:
            raise
        except Exception as exc:  # e.g. no credentials: reported per SLO, not a crash
            raise SourceError(f"backend {name} unavailable: {exc}", transient=False) from exc

    # Each backend opened by the first SLO that reads it; a failed open is tried again next time.
    backend_for: Memo[str, Backend] = Memo(open_named)

    if firestore_client is None:
        from shared.gcp import firestore as fs

        firestore_client = fs.client(settings.project_id)
    recorder = FirestoreRecorder(
        firestore_client,
        clock=clock,
        cooldown_s=settings.alert_cooldown_s,
        max_age_s=settings.alert_max_age_s,
        timeout_s=settings.firestore_timeout_s,
    )
    url = webhook_url_source(settings.slack_webhook_url, settings.slack_webhook_secret)
    notifier = SlackWebhook(url, timeout_s=settings.slack_timeout_s, clock=clock) if url else None
    context = StepContext(settings, firestore_client, notifier, clock, settings.alert_link_url)
    factories = _step_factories if steps is None else tuple(steps)
    built = [step for factory in factories if (step := factory(context)) is not None]
    return Monitor(config, backend_for, recorder, notifier, clock=clock,
                   link=settings.alert_link_url, run_budget_s=settings.run_budget_s,
                   steps=built)  # fmt: skip


def current_monitor() -> Monitor:
    """This instance's Monitor, built on first call; raises the (cached) ConfigInvalid."""
    global _monitor, _config_error
    with _lock:
        if _config_error is not None:
            raise _config_error
        if _monitor is None:
            from shared.slo.settings import settings

            try:
                try:
                    _monitor = build_monitor(settings(), clock=_clock)
                except SettingsError as exc:
                    raise ConfigInvalid("environment", [str(p) for p in exc.problems]) from exc
            except ConfigInvalid as exc:
                _config_error = exc
                logger.error("slo_monitor cannot run: %s", exc)
                raise
        return _monitor


def reset(*, clock: Clock = SYSTEM_CLOCK) -> None:
    """Forget the instance's Monitor and config error (tests, or after fixing the file).

    The next Monitor reads time from ``clock`` (tests pass a fake one instead of waiting).
    """
    global _monitor, _config_error, _clock
    with _lock:
        _monitor, _config_error, _clock = None, None, clock


def handle(request: Any) -> tuple[dict[str, object], int]:
    """Serve one run: 200 with the run summary; 503 when Cloud Scheduler should retry."""
    from shared.obs import json_error

    if request.method not in ("GET", "POST"):
        return json_error(405, "method_not_allowed", "use POST (or GET)", allowed=["GET", "POST"])
    try:
        monitor = current_monitor()
    except ConfigInvalid as exc:
        return json_error(500, "config_invalid", str(exc), source=exc.source,
                          problems=list(exc.problems))  # fmt: skip
    try:
        report = monitor.run()
    except RecordError as exc:
        logger.error("slo_monitor run not recorded: %s", exc)
        return json_error(503, "record_failed", str(exc))
    summary = report.to_json()
    if report.blind:
        # One line a person can act on: each SLO, how many windows failed, the first reason
        # (the answer's summary has them all).
        why = "; ".join(
            f"{r.slo.name} ({len(r.errors)} of {len(r.slo.windows_s)} windows): {r.errors[0]}"
            for r in report.blind
        )
        logger.error("slo_monitor could not measure %d SLO(s): %s", len(report.blind), why)
        names = ", ".join(r.slo.name for r in report.blind)
        return json_error(503, "slo_errors", f"could not measure {names}; retry", summary=summary)
    return dict(summary), 200
