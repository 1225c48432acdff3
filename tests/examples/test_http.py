"""graph_ask served by functions-framework (gunicorn) over real HTTP, peers real."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.examples.conftest import Peers

pytestmark = pytest.mark.slow


def test_answers_cache_status_and_records_over_http(
    serve_graph_ask: Callable[..., str], peers: Peers, tmp_path: Path
) -> None:
    db = tmp_path / "metrics.db"
    url = serve_graph_ask(
        LOCAL_METRICS_DB=str(db), REQUEST_SINK="shared.slo.local_store:batch_writer_from_env"
    )
    question = {"question": "What is Neo4j?"}

    first = requests.post(f"{url}/graph_ask", json=question, timeout=10)
    second = requests.post(f"{url}/graph_ask", json=question, timeout=10)
    delivered = requests.post(f"{url}/insights/deliver", json={"insight": {"k": 1}}, timeout=10)
    status = requests.get(f"{url}/graph_ask/_status", timeout=10).json()

    assert first.status_code == 200, first.text
    assert (first.json()["served"], second.json()["served"]) == ("normal", "cached")
    assert first.json()["trace_id"] == first.headers["X-Trace-Id"]
    assert delivered.json()["delivered"] is True
    assert status["cache"]["hits"] == 1
    assert status["breakers"]["graph"] == "closed"
    # The records the local SLOs read carry the seed's names (written off the request thread,
    # in batches: wait for them).
    assert records_by_function(db, total=4) == {"graphAsk": 2, "insights": 1, "graphAskStatus": 1}


def records_by_function(db: Path, total: int, timeout_s: float = 10.0) -> dict[str, int]:
    """``{function: count}`` once the store holds ``total`` records (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    rows: dict[str, int] = {}
    while time.monotonic() < deadline:
        if db.exists():
            query = "SELECT function, COUNT(*) FROM requests GROUP BY function"
            # The table may not exist yet: the writer creates it with its first batch.
            with (
                contextlib.closing(sqlite3.connect(db)) as conn,
                contextlib.suppress(sqlite3.OperationalError),
            ):
                rows = dict(conn.execute(query))
        if sum(rows.values()) >= total:
            break
        time.sleep(0.1)
    return rows


def test_surge_over_http_premium_answered_free_refused_with_retry_after(
    serve_graph_ask: Callable[..., str],
) -> None:
    # Twice the capacity (4 req/s against 120 rpm) for 3 s, one request in three premium.
    url = serve_graph_ask(GRAPH_ASK_RPM="120", GRAPH_ASK_FREE_WAIT_S="0.3")
    requests.get(f"{url}/graph_ask/_status", timeout=10).raise_for_status()  # warm up
    plans = ["premium", "free", "free"] * 4

    def ask(plan: str) -> tuple[str, requests.Response]:
        body = {"question": "What is Firestore?"}
        return plan, requests.post(
            f"{url}/graph_ask", json=body, headers={"X-Plan": plan}, timeout=10
        )

    started = time.monotonic()
    with ThreadPoolExecutor(len(plans)) as pool:
        futures = []
        for n, plan in enumerate(plans):
            time.sleep(max(0.0, started + n * 0.25 - time.monotonic()))
            futures.append(pool.submit(ask, plan))
        answers = [f.result() for f in futures]

    premium = [r for p, r in answers if p == "premium"]
    free = [r for p, r in answers if p == "free"]
    assert [r.status_code for r in premium] == [200] * 4
    # At most GRAPH_ASK_PREMIUM_WAIT_S (1 s) in the queue, plus the answer.
    assert all(r.elapsed.total_seconds() < 1.5 for r in premium)
    refused = [r for r in free if r.status_code == 429]
    assert len(refused) >= 2, [r.status_code for r in free]
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert all(r.json()["error"] == "rate_limited" for r in refused)
    admitted = [r for r in free if r.status_code == 200]
    assert admitted, "free requests are admitted from the top of the bucket"
