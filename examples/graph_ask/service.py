"""The resilience objects of one graph_ask instance, built on first use from its settings.

They live in the service process and are observed only through its answers, its request records
and ``/graph_ask/_status``: admission (plan priority at ``GRAPH_ASK_RPM``), the graph cache, the
``graph`` breaker and one ``llm:<model>`` breaker per model (both from the process-wide breaker
registry, as any product would use them), the fallback chain and the insights sink.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from examples.graph_ask.graph import GraphClient
from examples.graph_ask.insights import InsightSink
from examples.graph_ask.rollout import follower_for
from examples.graph_ask.settings import GraphAskSettings, settings
from shared.canary.assignment import RolloutFollower
from shared.resilience.admission import PriorityAdmission
from shared.resilience.cache import TTLCache
from shared.resilience.circuit import Circuit, breaker
from shared.resilience.events import METRICS
from shared.resilience.fallback import FallbackChain, breaker_name
from shared.settings import once

GRAPH_BREAKER = "graph"


@dataclass(frozen=True, slots=True)
class Service:
    """Everything one instance shares between its requests."""

    settings: GraphAskSettings
    admission: PriorityAdmission | None
    cache: TTLCache | None
    graph: GraphClient
    graph_breaker: Circuit
    chain: FallbackChain
    sink: InsightSink
    rollout: RolloutFollower | None = None

    @property
    def models(self) -> tuple[str, ...]:
        """The chain asked for an answer: primary, then the fallback unless it is disabled."""
        s = self.settings
        if s.enabled("fallback"):
            return (s.primary_model, s.fallback_model)
        return (s.primary_model,)

    def breaker_states(self) -> dict[str, str]:
        """``{"graph": state, "llm:<model>": state}`` for the graph and every chain model."""
        states: dict[str, str] = {GRAPH_BREAKER: self.graph_breaker.state}
        for model in self.models:
            name = breaker_name(model)
            states[name] = breaker(name).state
        return states

    def status(self) -> dict[str, object]:
        """The exported view: breakers, cache, admission, deliveries, the process's resilience
        metrics (fallback hit rate, retries, rejections) and configuration."""
        cache: dict[str, object] | None = None
        if self.cache is not None:
            stats = self.cache.stats()
            cache = {**asdict(stats), "hit_rate": stats.hit_rate}
        admission = asdict(self.admission.stats()) if self.admission is not None else None
        return {
            "breakers": self.breaker_states(),
            "cache": cache,
            "admission": admission,
            "insights": asdict(self.sink.counts()),
            "metrics": METRICS.snapshot(),
            "rollout": self._rollout_view(),
            "config": self.settings.public(),
        }

    def _rollout_view(self) -> dict[str, object] | None:
        if self.rollout is None:
            return None
        seen = self.rollout.last()
        if seen is None:
            return {"name": self.rollout.name, "known": False}
        return {"name": seen.name, "known": True, "status": seen.status, "stable": seen.stable,
                "candidate": seen.serving, "percent": seen.percent}  # fmt: skip


def build_service(s: GraphAskSettings) -> Service:
    """A service for settings ``s`` (clients connect on their first request)."""
    admission = None
    if s.enabled("admission"):
        admission = PriorityAdmission(s.rpm, free_queue_size=s.free_queue, name="graph_ask")
    cache = None
    if s.enabled("cache"):
        cache = TTLCache(max_entries=1024, name="graph", stale_ttl=s.stale_ttl_s)
    return Service(
        settings=s,
        admission=admission,
        cache=cache,
        graph=GraphClient(s.graph_url, s.graph_timeout_s),
        graph_breaker=breaker(
            GRAPH_BREAKER, fail_max=s.breaker_fails, reset_timeout=s.breaker_reset_s
        ),
        chain=FallbackChain(table=s.models),
        sink=InsightSink(
            s.insights_url,
            attempts=s.insights_attempts,
            timeout_s=s.insights_timeout_s,
            budget_s=s.insights_budget_s,
        ),
        rollout=follower_for(s),
    )


@once
def service() -> Service:
    """This instance's service, built on first use."""
    return build_service(settings())
