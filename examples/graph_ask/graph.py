"""The knowledge-graph client: one Cypher statement over Neo4j's HTTP transaction API.

``POST {base_url}/db/neo4j/tx/commit`` with ``{"statements": [{"statement", "parameters"}]}``;
Neo4j answers ``{"results": [{"columns", "data": [{"row": [...]}]}], "errors": [...]}``. Failures
leave as exceptions :func:`~shared.resilience.transient.is_transient` classifies: a non-2xx answer
is an :class:`~shared.resilience.transient.HttpStatusError`, an unusable body a
:class:`MalformedGraphAnswer` (transient), timeouts and dropped connections stay ``requests``
exceptions. The session is created on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import requests

from shared.obs import current_trace
from shared.resilience.sessions import LazySession
from shared.resilience.transient import HttpStatusError, TransientError, parse_retry_after

#: The one statement graph_ask runs: facts whose topic is named in the question.
FACTS_QUERY: Final = (
    "MATCH (t:Topic)-[r]->(o) WHERE toLower($question) CONTAINS toLower(t.name) "
    "RETURN t.name AS topic, type(r) AS relation, o.name AS object LIMIT 20"
)


@dataclass(frozen=True, slots=True)
class Fact:
    """One row of the facts query."""

    topic: str
    relation: str
    object: str

    def sentence(self) -> str:
        return f"{self.topic} {self.relation.lower().replace('_', ' ')} {self.object}"


class MalformedGraphAnswer(TransientError):
    """The graph answered 2xx with a body that is not a Neo4j result, or with Neo4j errors."""


class GraphClient:
    """Runs the facts query against one Neo4j HTTP endpoint; ``timeout_s`` bounds each read."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.url = f"{base_url}/db/neo4j/tx/commit"
        self.timeout_s = timeout_s
        self._session = LazySession()

    def facts(self, question: str) -> tuple[Fact, ...]:
        """The facts about the topics ``question`` names (possibly none)."""
        body = {"statements": [{"statement": FACTS_QUERY, "parameters": {"question": question}}]}
        headers = {"Accept": "application/json"}
        trace = current_trace()
        if trace is not None:
            headers.update(trace.to_headers())
        response = self._session.get().post(
            self.url, json=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
        )
        if not 200 <= response.status_code < 300:
            raise HttpStatusError(
                response.status_code,
                f"graph answered HTTP {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        return parse_facts(_json(response))

    def close(self) -> None:
        self._session.close()


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise MalformedGraphAnswer("graph answered a body that is not JSON") from exc


def parse_facts(document: Any) -> tuple[Fact, ...]:
    """The rows of a Neo4j HTTP API answer as facts; MalformedGraphAnswer when it is not one."""
    if not isinstance(document, dict):
        raise MalformedGraphAnswer("graph answer is not a JSON object")
    errors = document.get("errors") or []
    if errors:
        first = errors[0] if isinstance(errors, list) else errors
        code = first.get("code", "?") if isinstance(first, dict) else "?"
        raise MalformedGraphAnswer(f"graph answered error {code}")
    try:
        rows = document["results"][0]["data"]
        facts = tuple(Fact(*(str(v) for v in item["row"][:3])) for item in rows)
    except (KeyError, IndexError, TypeError) as exc:
        raise MalformedGraphAnswer("graph answer has no results[0].data rows of 3") from exc
    return facts
