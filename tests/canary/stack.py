"""A real local stack for the rollout tests: what ``make run`` runs for a model rollout.

The Firestore emulator (rollouts, heartbeats, SLO records, chaos experiments), the stand-in
upstreams (``scripts.local_upstream``), chaos_proxy forwarding ``neo4j``, ``llm``,
``llm-candidate`` and ``insights`` to them, and graph_ask under functions-framework following
the rollout ``ask-model``: ``primary-llm`` through ``llm``, ``candidate-llm`` through
``llm-candidate`` (so an experiment can slow or fail one version only), ``fallback-llm`` direct.
graph_ask writes its request records (with their cohort) into a SQLite store the in-process
monitor reads. Every process binds 127.0.0.1 on a free port and is stopped by process group.
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from tests import services
from tests.ctk.stack import clean_env, warm_up

REPO = Path(__file__).resolve().parents[2]
ROLLOUT = "ask-model"


@dataclass
class Stack:
    proxy: str  # http://127.0.0.1:<port>/chaos_proxy
    graph_ask: str  # http://127.0.0.1:<port>
    db: Path  # the request store graph_ask writes

    def experiment(self, upstream: str, mode: str, **extra: Any) -> str:
        body = {"upstream": upstream, "mode": mode, "duration_s": 120, **extra}
        resp = requests.post(f"{self.proxy}/_experiments", json=body, timeout=10)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    def stop_experiments(self) -> None:
        for upstream in ("llm", "llm-candidate"):
            resp = requests.delete(
                f"{self.proxy}/_experiments", params={"upstream": upstream}, timeout=10
            )
            assert resp.status_code == 200, resp.text


def _function(name: str, source: Path, env: dict[str, str]) -> services.Service:
    port = services.free_port()
    argv = [sys.executable, "-m", "functions_framework", "--target", name, "--source", str(source)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    return services.start_process(name, argv, port, env=env, cwd=str(REPO), timeout=60)


@contextmanager
def running_stack(tmp: Path, firestore_host: str, project: str) -> Iterator[Stack]:
    with ExitStack() as stop:
        base = clean_env()
        port = services.free_port()
        upstream_proc = services.start_process(
            "upstream",
            [sys.executable, "-m", "scripts.local_upstream", "--port", str(port)],
            port, env=base, cwd=str(REPO),
        )  # fmt: skip
        stop.enter_context(services.running(upstream_proc))
        upstream = f"http://127.0.0.1:{port}"
        common = {
            **base,
            "GOOGLE_CLOUD_PROJECT": project,
            "FIRESTORE_EMULATOR_HOST": firestore_host,
            "WORKERS": "1",
            "REQUEST_LOG_SAMPLE_RATE": "0",
        }
        proxy_env = {
            **common,
            "THREADS": "64",
            "CHAOS_ENABLED": "true",
            "CHAOS_AUTH": "none",
            "CHAOS_EXPERIMENT_CACHE_TTL_S": "0",
            "CHAOS_UPSTREAMS": (
                f"neo4j={upstream}/neo4j,llm={upstream}/llm,llm-candidate={upstream}/llm,"
                f"insights={upstream}/insights"
            ),
        }
        proxy_svc = _function("chaos_proxy", REPO / "functions/chaos_proxy/main.py", proxy_env)
        stop.enter_context(services.running(proxy_svc))
        proxy = f"http://127.0.0.1:{proxy_svc.port}/chaos_proxy"
        table = tmp / "models.json"
        spec = {"provider": "openai", "timeout": 2}
        table.write_text(json.dumps({"models": {
            "primary-llm": {**spec, "base_url": f"{proxy}/llm/v1"},
            "candidate-llm": {**spec, "base_url": f"{proxy}/llm-candidate/v1"},
            "fallback-llm": {**spec, "base_url": f"{upstream}/llm/v1"},
        }}))  # fmt: skip
        warm_up(proxy)
        db = tmp / "metrics.db"
        env = {
            **common,
            "THREADS": "32",
            "GRAPH_URL": f"{proxy}/neo4j",
            "INSIGHTS_SINK_URL": f"{proxy}/insights/deliveries",
            "LLM_MODEL_TABLE": str(table),
            "GRAPH_ASK_RPM": "1000000",
            "GRAPH_ASK_ROLLOUT": ROLLOUT,
            "GRAPH_ASK_ROLLOUT_REFRESH_S": "0.5",
            "LOCAL_METRICS_DB": str(db),
            "REQUEST_SINK": "shared.slo.local_store:batch_writer_from_env",
        }
        ask = _function("graph_ask", REPO / "examples/graph_ask/main.py", env)
        stop.enter_context(services.running(ask))
        yield Stack(proxy, f"http://127.0.0.1:{ask.port}", db)


@dataclass
class Load:
    """Questions from many users at a steady pace on a few threads, until stopped."""

    url: str
    threads: int = 6
    pause_s: float = 0.05
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        with requests.Session() as session:
            session.trust_env = False
            while not self._stop.is_set():
                user = f"user-{rng.randrange(100_000)}"
                try:
                    resp = session.post(
                        f"{self.url}/graph_ask",
                        json={"question": "What is Neo4j?"},
                        headers={"X-User-Id": user},
                        timeout=10,
                    )
                    cohort = resp.headers.get("X-Rollout-Cohort", "-")
                    key = (cohort, resp.status_code)
                except requests.RequestException:
                    key = ("-", 0)
                with self._lock:
                    self.seen[key] += 1
                self._stop.wait(self.pause_s)

    @contextmanager
    def running(self) -> Iterator[Load]:
        workers = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.threads)
        ]
        for worker in workers:
            worker.start()
        try:
            yield self
        finally:
            self._stop.set()
            for worker in workers:
                worker.join(15)


def wait_for_boundary(step_s: float, after_s: float = 0.4) -> None:
    """Sleep to just past the next multiple of ``step_s`` (the monitor's aligned windows)."""
    now = time.time()
    time.sleep((now // step_s + 1) * step_s - now + after_s)
