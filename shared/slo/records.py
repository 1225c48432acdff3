"""The shapes of what the monitor keeps in Firestore and answers: typed documents, no ``Any``.

Collections (prefix ``slo``): ``slo_violations`` and ``slo_recoveries`` and ``slo_no_data`` (the
alert outbox, one :class:`AlertRecord` each), ``slo_state`` (one :class:`StateRecord` per SLO),
``slo_runs`` (one :class:`RunSummary` per run). Documents read back are taken as these types at
the one place they enter (:mod:`shared.slo.recording`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal, TypedDict

__all__ = [
    "AlertKind",
    "AlertRecord",
    "AlertState",
    "AlertsSummary",
    "BurnAlert",
    "Classification",
    "Outcome",
    "RunSummary",
    "StateRecord",
    "WindowSummary",
]

AlertState = Literal["pending", "sending", "sent", "failed", "suppressed", "abandoned", "expired"]
AlertKind = Literal["violation", "no_data", "recovery"]
Classification = Literal["new", "ongoing", "recovered", "no_data", "unchanged"]
#: What a run concluded about one SLO (``error``: its source failed; the run answers 503).
Outcome = Literal["ok", "violation", "no_data", "error"]


class BurnAlert(TypedDict):
    """One burn-rate rule that fired."""

    rule: str
    severity: str
    condition: str
    long_burn: float | None
    short_burn: float | None


class AlertRecord(TypedDict, total=False):
    """A violation, recovery or no-data record: what was seen, and its delivery state.

    ``not_before`` (set from Slack's ``Retry-After``) holds the next delivery back until then.
    """

    kind: AlertKind
    slo: str
    service: str
    sli: str
    method: str
    objective: str
    goal: float
    observed: float | None
    observed_text: str
    events: float
    status: str
    window_start: datetime
    window_end: datetime
    window: str
    burn_rate: float | None
    burn_rates: dict[str, float | None]
    detected_at: datetime
    run_id: str
    classification: Classification
    severity: str
    alerts: list[BurnAlert]
    violation_since: datetime | None
    last_violation: str | None
    no_data_since: datetime
    no_data_windows: int
    alert_state: AlertState
    alert_attempts: int
    claimed_by: str
    claim_until: datetime | None
    alert_sent_at: datetime
    alert_error: str | None
    not_before: datetime | None


class StateRecord(TypedDict, total=False):
    """Per SLO, across runs: whether it is alerting, and how long it has had no data."""

    slo: str
    alerting: bool
    since: datetime | None
    severity: str | None
    last_alert_at: datetime | None
    last_violation: str
    recovered_at: datetime
    updated_at: datetime
    #: Consecutive windows without data, the last one counted (its key), since when, alerted?
    no_data_windows: int
    no_data_window: str | None
    no_data_since: datetime | None
    no_data_alerted: bool


class WindowSummary(TypedDict):
    start: str
    end: str
    length: str


class AlertsSummary(TypedDict):
    configured: bool
    sent: list[str]
    failed: list[str]
    #: Held back: Slack asked us to wait (``Retry-After``), or a claim by another run.
    deferred: list[str]
    pending: int
    suppressed: int
    errors: list[str]


class RunSummary(TypedDict):
    """One run as the function answers it (``results`` is left out of the stored copy)."""

    run_id: str
    window: WindowSummary
    evaluated: int
    outcomes: dict[Outcome, int]
    ok: list[str]
    violations: dict[Literal["new", "ongoing"], list[str]]
    recoveries: list[str]
    no_data: list[str]
    no_data_alerts: list[str]
    errors: dict[str, list[str]]
    alerts: AlertsSummary
    results: list[dict[str, object]]
    steps: dict[str, object]
    duration_ms: float
