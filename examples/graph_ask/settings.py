"""Every setting of ``graph_ask``, read from the environment once per instance.

Durations are seconds. A bad value fails the first request with
:class:`~shared.settings.SettingsError` naming every bad variable and its allowed range.

===============================  ==============================================================
``GRAPH_ASK_RPM``                admission capacity, requests per minute (120)
``GRAPH_ASK_PREMIUM_WAIT_S``     longest a premium request queues for admission (1.0)
``GRAPH_ASK_FREE_WAIT_S``        longest a free request queues for admission (2.0)
``GRAPH_ASK_FREE_QUEUE``         free requests waiting at once; more get 429 (32)
``GRAPH_URL``                    Neo4j HTTP API base (the stack: through ``chaos_proxy``)
``GRAPH_ASK_GRAPH_TIMEOUT_S``    connect/read timeout of one graph query (0.3)
``GRAPH_ASK_GRAPH_ATTEMPTS``     graph query attempts inside the breaker (2)
``GRAPH_ASK_GRAPH_BUDGET_S``     total seconds the graph step may take before degrading (0.7)
``GRAPH_ASK_BREAKER_FAILS``      consecutive graph failures that open its breaker (4)
``GRAPH_ASK_BREAKER_RESET_S``    seconds the graph breaker stays open (8)
``GRAPH_ASK_CACHE_TTL_S``        seconds a graph answer is fresh (30)
``GRAPH_ASK_STALE_TTL_S``        seconds past its TTL it may be served when the graph fails (3600)
``LLM_MODEL_TABLE``              the model table file (``shared.resilience.llm``)
``GRAPH_ASK_MODELS``             primary,fallback model names of that table
``INSIGHTS_SINK_URL``            where ``/insights/deliver`` posts
``GRAPH_ASK_INSIGHTS_ATTEMPTS``  delivery attempts (4)
``GRAPH_ASK_INSIGHTS_TIMEOUT_S`` timeout of one delivery attempt (2.0)
``GRAPH_ASK_INSIGHTS_BUDGET_S``  total seconds a delivery may take with its retries (6.0)
``GRAPH_ASK_DISABLE``            comma list of ``cache``, ``fallback``, ``admission`` to switch
                                 off: a deliberately broken service for playbook tests
``GRAPH_ASK_ROLLOUT``            the rollout (``rollout/<name>`` in Firestore) of the primary
                                 model to follow (none)
``GRAPH_ASK_ROLLOUT_REFRESH_S``  seconds a read rollout document is used before re-reading (2)
``GRAPH_ASK_ROLLOUT_TIMEOUT_S``  bound of one rollout read or heartbeat write (0.5)
===============================  ==============================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import urlsplit

from shared.resilience.errors import ConfigError
from shared.resilience.llm import MODEL_TABLE_ENV, ModelTable, model_table
from shared.settings import Env, Problem, SettingsError, once

Feature = Literal["cache", "fallback", "admission"]
FEATURES: Final[tuple[Feature, ...]] = ("cache", "fallback", "admission")

#: The local stack's addresses (``make run``): the defaults when nothing else is set.
LOCAL_GRAPH_URL: Final = "http://127.0.0.1:8082/chaos_proxy/neo4j"
LOCAL_INSIGHTS_SINK_URL: Final = "http://127.0.0.1:8082/chaos_proxy/insights/deliveries"
DEFAULT_MODELS: Final = ("primary-llm", "fallback-llm")

_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}\Z")
_ROLLOUT_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}\Z")


@dataclass(frozen=True, slots=True)
class GraphAskSettings:
    """The validated settings of one instance (see the module docstring for each field)."""

    rpm: int
    premium_wait_s: float
    free_wait_s: float
    free_queue: int
    graph_url: str
    graph_timeout_s: float
    graph_attempts: int
    graph_budget_s: float
    breaker_fails: int
    breaker_reset_s: float
    cache_ttl_s: float
    stale_ttl_s: float
    primary_model: str
    fallback_model: str
    models: ModelTable
    insights_url: str
    insights_attempts: int
    insights_timeout_s: float
    insights_budget_s: float
    disabled: frozenset[Feature]
    rollout: str | None = None
    rollout_refresh_s: float = 2.0
    rollout_timeout_s: float = 0.5

    def enabled(self, feature: Feature) -> bool:
        return feature not in self.disabled

    def public(self) -> dict[str, object]:
        """What ``/graph_ask/_status`` may show: no secrets live here (API keys stay in env)."""
        return {
            "rpm": self.rpm,
            "premium_wait_s": self.premium_wait_s,
            "free_wait_s": self.free_wait_s,
            "free_queue": self.free_queue,
            "graph_url": self.graph_url,
            "graph_timeout_s": self.graph_timeout_s,
            "graph_attempts": self.graph_attempts,
            "graph_budget_s": self.graph_budget_s,
            "breaker_fails": self.breaker_fails,
            "breaker_reset_s": self.breaker_reset_s,
            "cache_ttl_s": self.cache_ttl_s,
            "stale_ttl_s": self.stale_ttl_s,
            "models": [self.primary_model, self.fallback_model],
            "insights_url": self.insights_url,
            "insights_attempts": self.insights_attempts,
            "disabled": sorted(self.disabled),
            "rollout": self.rollout,
        }


def parse_url(value: str) -> str:
    """An http(s) URL without query or fragment, trailing slash removed."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("not an http:// or https:// URL without query or fragment")
    return value.rstrip("/")


def parse_models(value: str) -> tuple[str, str]:
    """``primary,fallback``: two distinct model names."""
    names = tuple(n.strip() for n in value.split(","))
    if len(names) != 2 or names[0] == names[1] or not all(_MODEL_NAME.match(n) for n in names):
        raise ValueError(f"got {len(names)} name(s)")
    return names[0], names[1]


def parse_rollout_name(value: str) -> str:
    """A rollout name (as ``shared.canary`` names documents)."""
    if not _ROLLOUT_NAME.match(value):
        raise ValueError("1-63 lowercase letters, digits, '.', '_' or '-'")
    return value


def parse_disabled(value: str) -> frozenset[Feature]:
    """A comma list of features, each one of :data:`FEATURES`."""
    chosen = {n.strip().lower() for n in value.split(",") if n.strip()}
    unknown = sorted(chosen - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown {', '.join(unknown)}")
    return frozenset(f for f in FEATURES if f in chosen)


def load_settings(env: Env) -> GraphAskSettings:
    """Read and validate every setting from ``env``; SettingsError lists every bad one."""
    primary, fallback = env.parse(
        "GRAPH_ASK_MODELS",
        DEFAULT_MODELS,
        parse_models,
        allowed="two distinct model names of the model table, primary,fallback",
    )
    graph_timeout = env.number("GRAPH_ASK_GRAPH_TIMEOUT_S", 0.3, low=0.01, high=30.0)
    insights_timeout = env.number("GRAPH_ASK_INSIGHTS_TIMEOUT_S", 2.0, low=0.01, high=60.0)
    settings = GraphAskSettings(
        rpm=env.integer("GRAPH_ASK_RPM", 120, low=1, high=1_000_000),
        premium_wait_s=env.number("GRAPH_ASK_PREMIUM_WAIT_S", 1.0, low=0.0, high=60.0),
        free_wait_s=env.number("GRAPH_ASK_FREE_WAIT_S", 2.0, low=0.0, high=60.0),
        free_queue=env.integer("GRAPH_ASK_FREE_QUEUE", 32, low=0, high=10_000),
        graph_url=env.parse(
            "GRAPH_URL", LOCAL_GRAPH_URL, parse_url, allowed="an http(s) URL (Neo4j HTTP API base)"
        ),
        graph_timeout_s=graph_timeout,
        graph_attempts=env.integer("GRAPH_ASK_GRAPH_ATTEMPTS", 2, low=1, high=5),
        graph_budget_s=env.number(
            "GRAPH_ASK_GRAPH_BUDGET_S", max(0.7, graph_timeout), low=graph_timeout, high=60.0
        ),
        breaker_fails=env.integer("GRAPH_ASK_BREAKER_FAILS", 4, low=1, high=1000),
        breaker_reset_s=env.number("GRAPH_ASK_BREAKER_RESET_S", 8.0, low=0.01, high=3600.0),
        cache_ttl_s=env.number("GRAPH_ASK_CACHE_TTL_S", 30.0, low=0.01, high=86_400.0),
        # An hour: graph facts change slowly, and the seed's Neo4j-slow week lasts 15 minutes.
        stale_ttl_s=env.number("GRAPH_ASK_STALE_TTL_S", 3600.0, low=0.0, high=86_400.0),
        primary_model=primary,
        fallback_model=fallback,
        models=_model_table(env, (primary, fallback)),
        insights_url=env.parse(
            "INSIGHTS_SINK_URL", LOCAL_INSIGHTS_SINK_URL, parse_url, allowed="an http(s) URL"
        ),
        insights_attempts=env.integer("GRAPH_ASK_INSIGHTS_ATTEMPTS", 4, low=1, high=10),
        insights_timeout_s=insights_timeout,
        insights_budget_s=env.number(
            "GRAPH_ASK_INSIGHTS_BUDGET_S", 6.0, low=insights_timeout, high=120.0
        ),
        disabled=env.parse(
            "GRAPH_ASK_DISABLE",
            frozenset(),
            parse_disabled,
            allowed="a comma list of " + ", ".join(FEATURES),
        ),
        rollout=env.parse(
            "GRAPH_ASK_ROLLOUT",
            None,
            parse_rollout_name,
            allowed="a rollout name like graph-ask-model",
        ),
        rollout_refresh_s=env.number("GRAPH_ASK_ROLLOUT_REFRESH_S", 2.0, low=0.1, high=300.0),
        rollout_timeout_s=env.number("GRAPH_ASK_ROLLOUT_TIMEOUT_S", 0.5, low=0.05, high=10.0),
    )
    env.check()
    return settings


def _model_table(env: Env, names: tuple[str, str]) -> ModelTable:
    """The model table in effect, which must hold both models (a problem of env otherwise)."""
    path = env.text(MODEL_TABLE_ENV)
    environ = {MODEL_TABLE_ENV: path} if path else {}
    try:
        table = model_table(environ)
        table.chain(names)
    except ConfigError as exc:
        allowed = f"a model table defining {', '.join(names)} ({exc})"
        env.problems.append(Problem(MODEL_TABLE_ENV, path or "", allowed))
        return ModelTable()
    return table


@once
def settings() -> GraphAskSettings:
    """This instance's settings, read on first use."""
    return load_settings(Env())


__all__ = [
    "DEFAULT_MODELS",
    "FEATURES",
    "Feature",
    "GraphAskSettings",
    "SettingsError",
    "load_settings",
    "settings",
]
