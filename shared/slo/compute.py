"""One run's pipeline for every SLO: measure each window, evaluate, compute burn rates.

Source failures are collected into each SLO's result (slo-generator's habit) instead of aborting
the run: one broken SLI never hides the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from shared.slo.backends import Backend
from shared.slo.burn_rate import FiredRule, burn_rate, fired_rules, severity_of
from shared.slo.config import Slo
from shared.slo.durations import format_duration
from shared.slo.errors import SloError, SourceError
from shared.slo.evaluation import Status, describe_value, evaluate
from shared.slo.measurement import Measurement
from shared.slo.window import Window

BackendLookup = Callable[[str], Backend]


@dataclass(frozen=True, slots=True)
class SloResult:
    """The verdict on one SLO for one run, with its burn rates by window label (``1h``)."""

    slo: Slo
    window: Window
    status: Status
    value: float | None
    total: float
    burn_rates: Mapping[str, float | None] = field(default_factory=dict)
    fired: tuple[FiredRule, ...] = ()
    severity: str | None = None
    errors: tuple[str, ...] = ()
    transient_error: bool = False

    @property
    def breached(self) -> bool:
        """Violated over the evaluation window, or a burn-rate rule fires."""
        return self.status == "violation" or bool(self.fired)

    @property
    def burn_rate(self) -> float | None:
        """The burn rate over the evaluation window."""
        return self.burn_rates.get(self.window.label)

    def observed_text(self) -> str:
        return describe_value(self.slo, self.value)

    def to_json(self) -> dict[str, object]:
        return {
            "slo": self.slo.name,
            "service": self.slo.service,
            "sli": self.slo.sli,
            "status": self.status,
            "observed": self.value,
            "observed_text": self.observed_text(),
            "objective": self.slo.objective_text(),
            "events": self.total,
            "window": {
                "start": self.window.start,
                "end": self.window.end,
                "length": self.window.label,
            },
            "burn_rates": dict(self.burn_rates),
            "alerts": [
                {
                    "rule": f.rule.name,
                    "severity": f.rule.severity,
                    "long_burn": f.long_burn,
                    "short_burn": f.short_burn,
                    "condition": f.rule.describe(),
                }
                for f in self.fired
            ],
            "severity": self.severity,
            "errors": list(self.errors),
        }


def compute(
    slos: Sequence[Slo], backend_for: BackendLookup, end: float, *, max_workers: int = 8
) -> list[SloResult]:
    """Measure and judge every SLO over windows ending at ``end`` (epoch seconds).

    Each (SLO, window length) is measured once, concurrently on up to ``max_workers`` threads.
    """
    tasks = [(slo, Window.ending_at(end, w)) for slo in slos for w in slo.windows_s]
    if max_workers > 1 and len(tasks) > 1:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="slo") as pool:
            outcomes = list(pool.map(lambda t: _measure(backend_for, *t), tasks))
    else:
        outcomes = [_measure(backend_for, *t) for t in tasks]
    by_slo: dict[str, dict[int, Measurement | SloError]] = {}
    for (slo, window), outcome in zip(tasks, outcomes, strict=True):
        by_slo.setdefault(slo.name, {})[int(window.seconds)] = outcome
    return [_judge(slo, Window.ending_at(end, slo.window_s), by_slo[slo.name]) for slo in slos]


def _measure(backend_for: BackendLookup, slo: Slo, window: Window) -> Measurement | SloError:
    try:
        method: Callable[[Slo, Window], Measurement] = getattr(backend_for(slo.backend), slo.method)
        return method(slo, window)
    except SloError as exc:
        return exc


def _judge(slo: Slo, window: Window, outcomes: Mapping[int, Measurement | SloError]) -> SloResult:
    errors = [
        f"{format_duration(seconds)}: {outcome}"
        for seconds, outcome in sorted(outcomes.items())
        if isinstance(outcome, SloError)
    ]
    transient = any(isinstance(o, SourceError) and o.transient for o in outcomes.values())
    burns = {
        seconds: burn_rate(slo, outcome) if isinstance(outcome, Measurement) else None
        for seconds, outcome in outcomes.items()
    }
    fired = fired_rules(slo, burns)
    labels = {format_duration(s): b for s, b in sorted(burns.items())}
    main = outcomes[slo.window_s]
    if isinstance(main, SloError):
        return SloResult(slo, window, "error", None, 0, labels, fired, severity_of(fired, False),
                         tuple(errors), transient)  # fmt: skip
    verdict = evaluate(slo, main)
    severity = severity_of(fired, verdict.status == "violation")
    return SloResult(slo, window, verdict.status, verdict.value, main.total, labels, fired,
                     severity, tuple(errors), transient)  # fmt: skip
