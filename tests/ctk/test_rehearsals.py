"""End to end: each playbook's rehearsal with ``chaos run`` against a real local stack.

The stack (tests/ctk/stack.py): Firestore emulator, the stand-in upstreams, chaos_proxy and
graph_ask. Against the real service every rehearsal completes; against a deliberately broken one
(``GRAPH_ASK_DISABLE=cache,fallback,admission``, a fresh instance per run so no breaker state
carries over) every rehearsal is reported as deviated, or failed where the hypothesis cannot hold
even before the fault (cold start without a cache). Bounded: ~10-20 s per rehearsal.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.ctk.stack import Stack, chaos_run, running_stack, start_graph_ask

pytestmark = [pytest.mark.slow, pytest.mark.firestore, pytest.mark.timeout(600)]

BROKEN = {"GRAPH_ASK_DISABLE": "cache,fallback,admission"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, ExitStack]]:
    with running_stack(tmp_path_factory.mktemp("stack")) as started:
        yield started


@pytest.fixture(scope="module")
def graph_ask(stack: tuple[Stack, ExitStack]) -> str:
    return start_graph_ask(*stack)


@pytest.mark.parametrize("playbook", ["llm-down", "neo4j-slow", "ratelimit-surge", "cold-start"])
def test_rehearsal_holds_against_the_real_service(
    playbook: str, stack: tuple[Stack, ExitStack], graph_ask: str, tmp_path: Path
) -> None:
    run = chaos_run(playbook, graph_ask=graph_ask, proxy=stack[0].proxy, tmp=tmp_path)
    assert run.code == 0, run.output[-4000:]
    assert run.journal["status"] == "completed"
    assert run.journal["deviated"] is False
    assert run.tolerance_met("before") == [True]
    assert run.tolerance_met("after") == [True]
    rows = run.measurements()["rows"]
    assert rows, "the numbers measured from outside are journaled"
    if playbook == "llm-down":
        after = next(r for r in rows if r["phase"] == "after")["numbers"]
        assert after["fallback"] >= 0.9  # the fallback model answered behind the open breaker
        assert after["fallback_by_model"] == {"fallback-llm": after["sent"]}
    if playbook == "neo4j-slow":
        after = next(r for r in rows if r["phase"] == "after")["numbers"]
        assert after["cache_hit"] >= 0.9
    if playbook == "ratelimit-surge":
        after = next(r for r in rows if r["phase"] == "after")["numbers"]
        assert after["refused"] > 0  # free traffic over capacity was refused...
        assert after["refused_with_retry_after"] == 1.0  # ...politely
    if playbook == "cold-start":
        assert "prewarm_effect_ms" in run.measurements()["derived"]


@pytest.mark.parametrize(
    ("playbook", "status", "deviated"),
    [
        ("llm-down", "completed", True),  # no fallback model: 503s once the primary is down
        ("neo4j-slow", "completed", True),  # no cache: the UX message, or slow answers
        ("ratelimit-surge", "completed", True),  # no admission: serves 1.5 x its capacity
        ("cold-start", "failed", False),  # no cache to prewarm: fails before any fault
    ],
)
def test_rehearsal_deviates_against_the_broken_service(
    playbook: str, status: str, deviated: bool, stack: tuple[Stack, ExitStack], tmp_path: Path
) -> None:
    broken = start_graph_ask(*stack, **BROKEN)
    run = chaos_run(playbook, graph_ask=broken, proxy=stack[0].proxy, tmp=tmp_path)
    assert run.code == 1, run.output[-4000:]
    assert (run.journal["status"], run.journal["deviated"]) == (status, deviated)
    assert "criterion not met" in run.output
    # The rollback ran: no experiment of this playbook is left active on chaos_proxy.
    assert run.journal["rollbacks"] is not None
