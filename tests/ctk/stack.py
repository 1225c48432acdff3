"""A real local stack for the playbook rehearsals: the pieces of ``make run`` the playbooks touch.

The Firestore emulator (chaos_proxy's experiments), the stand-in upstreams
(``scripts.local_upstream``: Neo4j stand-in, LLM, insights sink), chaos_proxy forwarding
``neo4j``, ``llm`` and ``insights`` to them, and graph_ask under functions-framework with the
primary model through chaos_proxy and the fallback model direct, as in ``scripts/run_local.py``.
Every process binds 127.0.0.1 on a free port and is stopped by its process group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests import services

REPO = Path(__file__).resolve().parents[2]
PROJECT = "demo-ctk-test"
#: Variables of the parent that must not leak into the stack's processes.
_DROP_PREFIXES = ("GRAPH_ASK_", "CHAOS_", "PLAYBOOK_")
_DROP = ("GRAPH_URL", "INSIGHTS_SINK_URL", "LLM_MODEL_TABLE", "K_SERVICE", "GCP_PROJECT")


@dataclass(frozen=True)
class Stack:
    """Where the stack listens; ``graph_ask`` is the base URL of one graph_ask instance."""

    proxy: str  # http://127.0.0.1:<port>/chaos_proxy
    upstream: str
    env: dict[str, str]  # what graph_ask processes got (a copy starts another instance)


def clean_env() -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES) and k not in _DROP
    }
    env["PYTHONPATH"] = str(REPO)
    return env


def _function(name: str, source: Path, env: Mapping[str, str]) -> services.Service:
    port = services.free_port()
    argv = [sys.executable, "-m", "functions_framework", "--target", name, "--source", str(source)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    return services.start_process(name, argv, port, env=env, cwd=str(REPO), timeout=60)


def warm_up(proxy: str) -> None:
    """One call through each upstream: chaos_proxy's first forward makes its Firestore client
    (seconds), which must not land in a playbook's steady state (``make run``'s demo burst does
    the same for its stack)."""
    import requests

    statements = {"statements": [{"statement": "RETURN 1", "parameters": {"question": "x"}}]}
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    with requests.Session() as session:
        session.trust_env = False
        session.post(f"{proxy}/neo4j/db/neo4j/tx/commit", json=statements, timeout=60)
        session.post(f"{proxy}/llm/v1/chat/completions", json=chat, timeout=60)


@contextmanager
def running_stack(tmp: Path) -> Iterator[tuple[Stack, ExitStack]]:
    """Start the stack; yields it and the ExitStack that stops it (graph_asks join it)."""
    with ExitStack() as stop:
        firestore = stop.enter_context(services.running(services.start_firestore()))
        base = clean_env()
        port = services.free_port()
        upstream_proc = services.start_process(
            "upstream",
            [sys.executable, "-m", "scripts.local_upstream", "--port", str(port)],
            port,
            env=base,
            cwd=str(REPO),
        )
        stop.enter_context(services.running(upstream_proc))
        upstream = f"http://127.0.0.1:{port}"
        common = {
            **base,
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": firestore.host,
            "WORKERS": "1",
            "THREADS": "64",
            "REQUEST_LOG_SAMPLE_RATE": "0",
        }
        proxy_env = {
            **common,
            "CHAOS_ENABLED": "true",
            "CHAOS_AUTH": "none",
            # Experiments take effect on the next forwarded request (no lookup cache).
            "CHAOS_EXPERIMENT_CACHE_TTL_S": "0",
            "CHAOS_UPSTREAMS": (
                f"neo4j={upstream}/neo4j,llm={upstream}/llm,insights={upstream}/insights"
            ),
        }
        proxy_svc = _function(
            "chaos_proxy", REPO / "functions" / "chaos_proxy" / "main.py", proxy_env
        )
        stop.enter_context(services.running(proxy_svc))
        proxy = f"http://127.0.0.1:{proxy_svc.port}/chaos_proxy"
        table = tmp / "models.json"
        table.write_text(
            json.dumps(
                {
                    "models": {
                        "primary-llm": {
                            "provider": "openai",
                            "base_url": f"{proxy}/llm/v1",
                            "timeout": 2,
                        },
                        "fallback-llm": {
                            "provider": "openai",
                            "base_url": f"{upstream}/llm/v1",
                            "timeout": 2,
                        },
                    }
                }
            )
        )
        warm_up(proxy)
        env = {
            **common,
            "GRAPH_URL": f"{proxy}/neo4j",
            "INSIGHTS_SINK_URL": f"{proxy}/insights/deliveries",
            "LLM_MODEL_TABLE": str(table),
        }
        yield Stack(proxy, upstream, env), stop


def start_graph_ask(stack: Stack, stop: ExitStack, **extra: str) -> str:
    """One graph_ask instance (``extra`` on top of the stack's environment); its base URL."""
    svc = _function(
        "graph_ask", REPO / "examples" / "graph_ask" / "main.py", {**stack.env, **extra}
    )
    stop.enter_context(services.running(svc))
    return f"http://127.0.0.1:{svc.port}"


@dataclass(frozen=True)
class ChaosRun:
    """One ``chaos run``: its exit code, its journal and its terminal output."""

    code: int
    journal: dict[str, Any]
    output: str
    seconds: float

    def tolerance_met(self, phase: str) -> list[bool | None]:
        probes = (self.journal.get("steady_states") or {}).get(phase) or {}
        return [p.get("tolerance_met") for p in probes.get("probes") or []]

    def measurements(self) -> dict[str, Any]:
        for extension in self.journal.get("extensions") or []:
            if extension.get("name") == "measurements":
                return dict(extension)
        return {}


def chaos_run(
    playbook: str,
    *,
    graph_ask: str,
    proxy: str,
    tmp: Path,
    extra_env: Mapping[str, str] | None = None,
    args: tuple[str, ...] = (),
    timeout_s: float = 120.0,
) -> ChaosRun:
    """``chaos run playbooks/<playbook>.yaml`` with its rehearsal setting against the stack."""
    journal = tmp / f"journal-{playbook}.json"
    env = {
        **clean_env(),
        "GRAPH_ASK_URL": graph_ask,
        "CHAOS_PROXY_URL": proxy,
        "PLAYBOOK_REHEARSAL": "1",
        **(extra_env or {}),
    }
    chaos = str(Path(sys.executable).with_name("chaos"))
    argv = [chaos, "--no-version-check", "--log-file", str(tmp / f"{playbook}.log"), "run"]
    argv += [*args, "--journal-path", str(journal), str(REPO / "playbooks" / f"{playbook}.yaml")]
    started = time.monotonic()
    done = subprocess.run(
        argv,
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        start_new_session=True,
    )
    data = json.loads(journal.read_text()) if journal.exists() else {}
    return ChaosRun(done.returncode, data, done.stdout + done.stderr, time.monotonic() - started)
