"""Fixtures of the graph_ask tests: the real stand-in upstream and a real chaos_proxy in between.

The upstream (``scripts.local_upstream``: Neo4j stand-in, LLM, insights sink) and chaos_proxy
(its real functions-framework app, served over HTTP by werkzeug in a thread, experiments in memory)
run once per session; graph_ask reaches the graph, the primary model and the sink through that
chaos_proxy, so timed experiments shape them exactly as in the local stack.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import functions_framework
import pytest
import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from scripts import local_upstream
from shared.chaos.experiments import MemoryExperimentStore
from shared.chaos.runtime import use_runtime
from shared.obs import RequestRecord, use_request_sinks
from shared.settings import reset_settings
from tests import services

REPO = Path(__file__).resolve().parents[2]
SOURCE = str(REPO / "examples" / "graph_ask" / "main.py")

#: Environment variables of graph_ask and chaos_proxy a test must not inherit.
_PREFIXES = ("GRAPH_ASK_", "CHAOS_")
_NAMES = (
    "GRAPH_URL",
    "INSIGHTS_SINK_URL",
    "LLM_MODEL_TABLE",
    "LOCAL_METRICS_DB",
    "REQUEST_SINK",
    "K_SERVICE",
)


@dataclass(frozen=True)
class Peers:
    """Where the real peers listen."""

    upstream: str  # http://127.0.0.1:<port>
    proxy: str  # http://127.0.0.1:<port>/chaos_proxy

    def start_experiment(self, upstream: str, mode: str, **extra: Any) -> str:
        body = {"upstream": upstream, "mode": mode, "duration_s": 60, **extra}
        resp = requests.post(f"{self.proxy}/_experiments", json=body, timeout=5)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def sink_summary(self) -> dict[str, Any]:
        resp = requests.get(f"{self.upstream}/insights/deliveries", timeout=5)
        resp.raise_for_status()
        return dict(resp.json())


@pytest.fixture(scope="session")
def upstream() -> Iterator[str]:
    server = local_upstream.serve(services.free_port())
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """chaos_proxy's own request records say enough."""


@pytest.fixture(scope="session")
def proxy() -> Iterator[str]:
    app = functions_framework.create_app(
        target="chaos_proxy", source=str(REPO / "functions" / "chaos_proxy" / "main.py")
    )
    server: BaseWSGIServer = make_server(
        "127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/chaos_proxy"
    server.shutdown()
    thread.join(5)


def model_table(upstream: str, proxy: str) -> dict[str, Any]:
    """The primary model through chaos_proxy's ``llm`` upstream, the fallback direct."""
    return {
        "models": {
            "primary-llm": {"provider": "openai", "base_url": f"{proxy}/llm/v1", "timeout": 2},
            "fallback-llm": {"provider": "openai", "base_url": f"{upstream}/llm/v1", "timeout": 2},
        }
    }


@pytest.fixture(autouse=True)
def peers(
    upstream: str, proxy: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Peers]:
    """A clean environment pointing graph_ask at the peers, fresh settings and experiments."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES) or name in _NAMES:
            monkeypatch.delenv(name)
    table = tmp_path / "models.json"
    table.write_text(json.dumps(model_table(upstream, proxy)))
    monkeypatch.setenv("CHAOS_ENABLED", "true")
    monkeypatch.setenv("CHAOS_AUTH", "none")
    monkeypatch.setenv("CHAOS_EXPERIMENT_CACHE_TTL_S", "0")
    monkeypatch.setenv(
        "CHAOS_UPSTREAMS",
        f"neo4j={upstream}/neo4j,llm={upstream}/llm,insights={upstream}/insights",
    )
    monkeypatch.setenv("GRAPH_URL", f"{proxy}/neo4j")
    monkeypatch.setenv("INSIGHTS_SINK_URL", f"{proxy}/insights/deliveries")
    monkeypatch.setenv("LLM_MODEL_TABLE", str(table))
    reset_settings()
    with use_runtime(store=MemoryExperimentStore()):
        yield Peers(upstream, proxy)
    reset_settings()


@pytest.fixture
def records() -> Iterator[list[RequestRecord]]:
    """Every request record published during the test (graph_ask's and chaos_proxy's)."""
    seen: list[RequestRecord] = []
    with use_request_sinks(seen.append):
        yield seen


@pytest.fixture
def client() -> Any:
    """graph_ask in-process through functions-framework's test client."""
    return functions_framework.create_app(target="graph_ask", source=SOURCE).test_client()


@pytest.fixture
def serve_graph_ask() -> Iterator[Callable[..., str]]:
    """Start graph_ask under functions-framework (gunicorn) with the test's environment."""
    started: list[services.Service] = []

    def start(**env: str) -> str:
        port = services.free_port()
        exe = str(Path(sys.executable).with_name("functions-framework"))
        argv = [exe, "--source", SOURCE, "--target", "graph_ask"]
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        full = {**os.environ, "PYTHONPATH": str(REPO), "THREADS": "32", **env}
        started.append(services.start_process("graph_ask", argv, port, env=full, cwd=str(REPO)))
        return f"http://127.0.0.1:{port}"

    yield start
    for svc in started:
        svc.stop()
