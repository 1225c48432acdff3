"""The real signals a rollout listens to: this run's SLO verdicts and the instances' breakers.

* SLOs: the monitor's results for this run. An SLO **burns at page level** when one of its
  page-severity burn-rate rules fired; it is **healthy** when judged ``ok`` with no rule firing.
  These are organic: each SLO reads its service's own records (``graphAsk``), which a chaos
  experiment upstream degrades for real; the injected answers themselves carry
  ``X-Chaos-Injected`` and are recorded under the chaos functions, in no product SLO.
* Breakers: each serving instance writes a heartbeat with its breakers' states and since when
  they are not closed (:mod:`shared.canary.assignment`); a breaker counts as open for the
  longest any instance heard from within ``heartbeat_stale_s`` reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from shared.canary.gate import SloSignal

if TYPE_CHECKING:
    from shared.slo.compute import SloResult

PAGE = "page"


def slo_signals(results: Sequence[SloResult]) -> dict[str, SloSignal]:
    """Each SLO's signal by name."""
    out: dict[str, SloSignal] = {}
    for result in results:
        page = [f for f in result.fired if f.rule.severity == PAGE]
        detail = f"{result.status}, {result.observed_text()} vs {result.slo.objective_text()}"
        if page:
            detail += "; " + "; ".join(
                f"{f.rule.name} {f.long_burn:.1f}x/{f.short_burn:.1f}x > {f.rule.burn_rate:g}x"
                for f in page
            )
        healthy = result.status == "ok" and not result.breached
        out[result.slo.name] = SloSignal(result.slo.name, healthy, bool(page), detail)
    return out


def breakers_open(heartbeats: Iterable[Mapping[str, Any]], now: float) -> dict[str, float]:
    """Breaker name → seconds it has not been closed (the longest over the instances)."""
    out: dict[str, float] = {}
    for beat in heartbeats:
        breakers = beat.get("breakers")
        if not isinstance(breakers, Mapping):
            continue
        for name, state in breakers.items():
            if not isinstance(state, Mapping) or state.get("state") == "closed":
                continue
            since = state.get("open_since")
            seconds = max(0.0, now - float(since)) if isinstance(since, int | float) else 0.0
            out[str(name)] = max(out.get(str(name), 0.0), seconds)
    return out
