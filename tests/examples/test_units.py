"""graph_ask's pure pieces: cache keys, prompts, the Neo4j answer parser, setting parsers."""

from __future__ import annotations

from typing import Any

import pytest

from examples.graph_ask.answer import cache_key, prompt_for
from examples.graph_ask.graph import Fact, MalformedGraphAnswer, parse_facts
from examples.graph_ask.routes import retry_after_header
from examples.graph_ask.settings import parse_disabled, parse_models, parse_url
from shared.resilience.transient import is_transient


def test_cache_key_folds_case_and_spaces() -> None:
    assert cache_key("  What is\tNEO4J? ") == cache_key("what is neo4j?") == "graph:what is neo4j?"
    assert cache_key("what is neo4j") != cache_key("what is cypher")


def test_prompt_carries_the_question_and_the_facts() -> None:
    facts = (Fact("Neo4j", "QUERIED_WITH", "Cypher"), Fact("Neo4j", "IS_A", "graph database"))

    assert prompt_for("What is Neo4j?", facts) == (
        "What is Neo4j?\nFacts: Neo4j queried with Cypher; Neo4j is a graph database"
    )
    assert prompt_for("What is X?", ()) == "What is X?\nFacts: no known facts"


def test_parse_facts_reads_neo4j_rows() -> None:
    document = {
        "results": [{"columns": ["t", "r", "o"], "data": [{"row": ["A", "IS_A", "B"]}]}],
        "errors": [],
    }
    assert parse_facts(document) == (Fact("A", "IS_A", "B"),)


@pytest.mark.parametrize(
    "document",
    [
        [],
        {"results": []},
        {"results": [{"data": [{"row": ["only", "two"]}]}]},
        {"results": [{"data": [{"nope": 1}]}]},
        {"results": [], "errors": [{"code": "Neo.ClientError.Statement.SyntaxError"}]},
    ],
)
def test_an_unusable_graph_answer_is_a_transient_error(document: Any) -> None:
    with pytest.raises(MalformedGraphAnswer) as caught:
        parse_facts(document)
    assert is_transient(caught.value)


def test_setting_parsers_accept_what_they_document() -> None:
    assert parse_url("http://127.0.0.1:8082/chaos_proxy/neo4j/") == (
        "http://127.0.0.1:8082/chaos_proxy/neo4j"
    )
    assert parse_models(" a-llm , b-llm ") == ("a-llm", "b-llm")
    assert parse_disabled("Cache, admission,,") == frozenset({"cache", "admission"})
    assert parse_disabled("") == frozenset()


@pytest.mark.parametrize(
    ("parser", "value"),
    [
        (parse_url, "graph.local/neo4j"),
        (parse_url, "http://graph?x=1"),
        (parse_models, "same,same"),
        (parse_models, "a,b,c"),
        (parse_models, "a b,c"),
        (parse_disabled, "cache,breaker"),
    ],
)
def test_setting_parsers_reject_the_rest(parser: Any, value: str) -> None:
    with pytest.raises(ValueError):
        parser(value)


@pytest.mark.parametrize(("seconds", "header"), [(0.0, "1"), (0.2, "1"), (1.0, "1"), (1.01, "2")])
def test_retry_after_header_is_whole_seconds_at_least_one(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header
