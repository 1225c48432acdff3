"""Error-budget burn rates and the SRE Workbook's multiwindow, multi-burn-rate alert rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from shared.slo.config import BurnRateRule, Severity, Slo
from shared.slo.measurement import Measurement

#: Ordering of severities, lowest first; ``warning`` is a 5-minute violation no rule confirms.
SEVERITY_RANK = {"warning": 0, "ticket": 1, "page": 2}


@dataclass(frozen=True, slots=True)
class FiredRule:
    """A rule whose long and short windows both burn faster than its threshold."""

    rule: BurnRateRule
    long_burn: float
    short_burn: float


def burn_rate(slo: Slo, measurement: Measurement) -> float | None:
    """How fast the window spent budget: bad fraction over allowed bad fraction (1.0 = on pace).

    None when the window saw no events.
    """
    fraction = measurement.bad_fraction
    if fraction is None:
        return None
    return fraction / float(slo.budget)


def fired_rules(slo: Slo, burns: Mapping[int, float | None]) -> tuple[FiredRule, ...]:
    """The rules of ``slo`` firing given burn rates by window length (seconds)."""
    fired = []
    for rule in slo.rules:
        long_burn = burns.get(rule.long_window_s)
        short_burn = burns.get(rule.short_window_s)
        if long_burn is None or short_burn is None:
            continue
        if long_burn > rule.burn_rate and short_burn > rule.burn_rate:
            fired.append(FiredRule(rule, long_burn, short_burn))
    return tuple(fired)


def severity_of(fired: tuple[FiredRule, ...], violated: bool) -> str | None:
    """The highest severity among fired rules; ``warning`` for an unconfirmed violation."""
    severities: list[Severity | str] = [f.rule.severity for f in fired]
    if violated:
        severities.append("warning")
    if not severities:
        return None
    return max(severities, key=SEVERITY_RANK.__getitem__)
