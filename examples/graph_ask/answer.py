"""From a question to an answer: graph facts (cached, breaker, retry), then the model chain.

How an answer was served, most degraded first (one word per answer, the admin page shows it):

- ``degraded``: no answer could be composed (graph down with nothing cached, or no model
  answered); ``answer`` is the UX fallback message and ``degraded_reason`` says why;
- ``stale``: the graph failed and an expired cache entry (within its stale grace) stood in;
- ``fallback``: the primary model gave no answer and the fallback model did;
- ``cached``: the facts came fresh from the cache;
- ``normal``: fresh facts from the graph, answered by the primary model.

With ``fallback`` disabled there is neither a fallback model nor the UX message: what would have
been ``degraded`` raises :class:`Unavailable` (the handler answers 503).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

import requests

from examples.graph_ask.errors import GraphAskError
from examples.graph_ask.graph import Fact
from examples.graph_ask.service import Service
from shared.resilience.compose import with_breaker_and_retry
from shared.resilience.errors import CircuitOpenError
from shared.resilience.fallback import AllModelsFailed
from shared.resilience.transient import HttpStatusError, TransientError, retry_after_of

Served = Literal["normal", "cached", "stale", "fallback", "degraded"]
CacheState = Literal["hit", "miss", "stale", "off"]

#: What a user reads when no answer can be composed: honest, short, with a next step.
UX_FALLBACK_MESSAGE: Final = (
    "We can't look this up right now. Your question is fine; please try again in a minute."
)

_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer and how it was served (see the module docstring)."""

    text: str
    served: Served
    model: str | None
    cache: CacheState
    degraded_reason: str | None = None


class Unavailable(GraphAskError):
    """No answer and no UX fallback (``fallback`` disabled); ``retry_after`` in seconds or None."""

    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


# What a failed graph step raises: transport errors, HTTP statuses, an unusable answer, an open
# breaker. A configuration error is not an outage: it is left to surface as a 500 and a log line.
_GRAPH_FAILURES: Final = (
    requests.RequestException,
    HttpStatusError,
    TransientError,
    CircuitOpenError,
)


def cache_key(question: str) -> str:
    """The graph cache key: the question case- and space-folded."""
    return "graph:" + _SPACES.sub(" ", question.strip().casefold())


def prompt_for(question: str, facts: tuple[Fact, ...]) -> str:
    known = "; ".join(f.sentence() for f in facts) or "no known facts"
    return f"{question}\nFacts: {known}"


def answer_question(question: str, svc: Service, models: tuple[str, ...] | None = None) -> Answer:
    """Answer ``question`` with ``svc``'s graph, cache, breakers and model chain (``models``:
    the chain to ask, by default the service's primary then fallback)."""
    try:
        facts, cache = _facts(question, svc)
    except _GRAPH_FAILURES as exc:
        return _degraded(svc, "graph_unavailable", "miss" if svc.cache else "off", exc)
    try:
        result = svc.chain.ask(prompt_for(question, facts), models or svc.models)
    except (AllModelsFailed, HttpStatusError) as exc:
        # HttpStatusError: a model rejected the prompt (400/413/422), not worth another model.
        return _degraded(svc, "llm_unavailable", cache, exc)
    served: Served
    if cache == "stale":
        served = "stale"
    elif result.fallback_used:
        served = "fallback"
    elif cache == "hit":
        served = "cached"
    else:
        served = "normal"
    return Answer(result.text, served, result.model, cache)


def _facts(question: str, svc: Service) -> tuple[tuple[Fact, ...], CacheState]:
    s = svc.settings

    def load() -> tuple[Fact, ...]:
        # Breaker outside the retries: one exhausted sequence is one failure toward opening it.
        return with_breaker_and_retry(
            svc.graph_breaker,
            lambda: svc.graph.facts(question),
            s.graph_attempts,
            base=0.05,
            cap=0.2,
            deadline=s.graph_budget_s,
            name="graph",
        )

    if svc.cache is None:
        return load(), "off"
    result = svc.cache.load(cache_key(question), s.cache_ttl_s, load)
    if result.hit:
        return result.value, "hit"
    return result.value, "stale" if result.stale else "miss"


def _degraded(svc: Service, reason: str, cache: CacheState, exc: BaseException) -> Answer:
    if not svc.settings.enabled("fallback"):
        raise Unavailable(reason, retry_after_of(exc)) from exc
    return Answer(UX_FALLBACK_MESSAGE, "degraded", None, cache, reason)
