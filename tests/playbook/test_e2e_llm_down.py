"""End to end: playbooks/llm-down.yaml, in seconds, against real local servers.

chaos_proxy runs under functions-framework (experiments in the Firestore emulator) and forwards
``local-llm`` to a local OpenAI-compatible server; the fallback model is a second one. The
playbook starts a real timed experiment (mode=error) through the proxy's API.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from shared.playbook.cli import main
from tests import services
from tests.chaos.servers import start_function
from tests.llm_servers import LLMServer

pytestmark = [pytest.mark.slow, pytest.mark.firestore]

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "llm-down.yaml"


@dataclass
class Stack:
    proxy_url: str
    primary: LLMServer
    fallback: LLMServer

    def experiments(self) -> list[dict[str, object]]:
        answer = requests.get(f"{self.proxy_url}/_experiments", timeout=10)
        answer.raise_for_status()
        return list(answer.json()["experiments"])


@pytest.fixture(scope="module")
def stack(firestore_service: services.Service) -> Iterator[Stack]:
    with LLMServer(openai_key=None) as primary, LLMServer(openai_key=None) as fallback:
        proxy = start_function(
            "chaos_proxy",
            {
                "CHAOS_ENABLED": "true",
                "CHAOS_AUTH": "none",
                "CHAOS_UPSTREAMS": f"local-llm={primary.url}",
                "CHAOS_EXPERIMENT_CACHE_TTL_S": "0",
                "FIRESTORE_EMULATOR_HOST": firestore_service.host,
                "GOOGLE_CLOUD_PROJECT": f"demo-playbook-{uuid.uuid4().hex[:8]}",
            },
        )
        try:
            yield Stack(f"http://{proxy.host}/chaos_proxy", primary, fallback)
        finally:
            proxy.stop()


def _run(stack: Stack, tmp_path: Path, *, fallback_url: str) -> tuple[int, dict[str, object]]:
    journal = tmp_path / "journal.json"
    code = main(
        [
            "run", str(PLAYBOOK), "--journal", str(journal),
            "--var", f"chaos_proxy_url={stack.proxy_url}",
            "--var", f"fallback_base_url={fallback_url}",
            "--var", "outage_s=60",
            "--var", "prompts=20",
            "--var", "prompt_interval_s=0.02",
            "--var", "steady_prompts=3",
            "--var", "llm_timeout_s=3",
        ]
    )  # fmt: skip
    return code, json.loads(journal.read_text())


def test_llm_down_keeps_answering_through_the_fallback(stack: Stack, tmp_path: Path) -> None:
    stack.primary.reset()
    stack.fallback.reset()
    code, journal = _run(stack, tmp_path, fallback_url=stack.fallback.openai_base_url)
    assert code == 0, json.dumps(journal, indent=1)[:3000]
    assert journal["status"] == "completed"
    steps = {s["name"]: s for s in journal["steps"] if s["phase"] == "method"}
    started = steps["start-llm-outage"]["output"]
    assert started["status"] == 201
    assert started["body"]["mode"] == "error"
    during = steps["prompts-during-outage"]["output"]
    assert during["answered"] == 20
    assert during["answered_by"] == {"fallback": 20}
    assert during["fallback"]["fallback_hit_rate"] == 1.0
    assert during["breakers_opened"] == ["llm:primary"]  # the outage tripped the breaker
    # The primary answered only the steady-state probes (3 before, 3 after the outage):
    # during it, chaos_proxy failed the requests and then the open breaker skipped the model.
    assert stack.primary.requests_for("gpt-4o-mini") == 6
    assert stack.fallback.requests_for("local-llm") == 20
    assert steps["end-llm-outage"]["output"]["stopped"] == [started["body"]["id"]]
    assert not [e for e in stack.experiments() if e["status"] == "active"]


def test_llm_down_deviates_without_a_fallback_and_still_rolls_back(
    stack: Stack, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{services.free_port()}/v1"
    code, journal = _run(stack, tmp_path, fallback_url=dead)
    assert code == 1
    assert journal["status"] == "deviated"
    criteria = {c["name"]: c for c in journal["criteria"]}
    assert criteria["answer rate maintained"]["met"] is False
    assert criteria["answer rate maintained"]["actual"] == 0.0
    rollback = [s for s in journal["steps"] if s["phase"] == "rollback"]
    assert [s["status"] for s in rollback] == ["succeeded"]
    assert not [e for e in stack.experiments() if e["status"] == "active"]
