"""Defect 2 of issue 12: concurrent starts on the Firestore emulator answer 201, 409 or a quick
503 with ``Retry-After``; never a 500 (they were 92 x 500 of 96, after ~10 s each)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import functions_framework
import pytest

from shared.chaos.firestore_store import FirestoreExperimentStore
from shared.chaos.runtime import use_runtime
from tests.chaos.servers import EchoUpstream

pytestmark = [pytest.mark.firestore, pytest.mark.slow]

WAVES = 4
CONCURRENCY = 24
START = {"upstream": "demo", "mode": "error", "duration_s": 1}
QUICK_S = 8.0
"""Slowest acceptable answer: the store's 5 s bound plus scheduling on a loaded 2-core machine."""


@pytest.mark.usefixtures("firestore_env")
def test_contended_starts_are_201_409_or_503_with_retry_after(
    chaos_env: pytest.MonkeyPatch, echo_upstream: EchoUpstream
) -> None:
    chaos_env.setenv("CHAOS_UPSTREAMS", f"demo={echo_upstream.url}")
    app = functions_framework.create_app(
        target="chaos_proxy", source="functions/chaos_proxy/main.py"
    )
    answers: list[tuple[int, str | None, str, float]] = []
    lock = threading.Lock()

    def start(_: int) -> None:
        began = time.monotonic()
        r = app.test_client().post("/chaos_proxy/_experiments", json=START)
        body = r.get_json()
        with lock:
            answers.append(
                (r.status_code, r.headers.get("Retry-After"), body["error"] if r.status_code != 201
                 else "", time.monotonic() - began)
            )  # fmt: skip

    with use_runtime(store=FirestoreExperimentStore()), ThreadPoolExecutor(CONCURRENCY) as pool:
        assert app.test_client().get("/chaos_proxy/_experiments").status_code == 200  # warm up
        for _wave in range(WAVES):
            list(pool.map(start, range(CONCURRENCY)))
            time.sleep(START["duration_s"])  # type: ignore[arg-type]  # the wave's one expires

    statuses = Counter(status for status, *_ in answers)
    assert sum(statuses.values()) == WAVES * CONCURRENCY
    assert set(statuses) <= {201, 409, 503}, statuses
    assert 1 <= statuses[201] <= WAVES, statuses  # one active experiment per upstream at a time
    for status, retry_after, error, elapsed in answers:
        assert elapsed < QUICK_S, (status, error, elapsed)
        if status == 503:
            assert (error, retry_after) == ("store_contended", "1")
        if status == 409:
            assert error == "experiment_conflict"
