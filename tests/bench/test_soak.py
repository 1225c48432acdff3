"""The soak benchmark's readings: wrk's maximum latency and the store's settled record count."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bench import bench_soak
from bench.bench_soak import settled_count, stored_records, wrk_max_ms
from shared.obs.requests import RequestRecord
from shared.slo.local_store import LocalStore

OUTPUT = """Running 60s test @ http://127.0.0.1:18777/?p=0&d=50
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    {avg}    12.30ms   {max}   80.00%
    Req/Sec   850.00     50.00     0.95k    70.00%
"""


@pytest.mark.parametrize(
    ("avg", "max_text", "expected"),
    [("75.10ms", "1.40s", 1400.0), ("75.10ms", "313.20ms", 313.2), ("910.00us", "950.00us", 0.95)],
)
def test_wrk_max_latency_in_ms(avg: str, max_text: str, expected: float) -> None:
    assert wrk_max_ms(OUTPUT.format(avg=avg, max=max_text)) == pytest.approx(expected)


def test_output_without_a_latency_line_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no latency line"):
        wrk_max_ms("Running 1s test\n")


def record(i: int, function: str = "chaos_delay") -> RequestRecord:
    return RequestRecord(function, "GET", "/", 200, 50.0, f"{i + 1:032x}", False, 1.8e9 + i)


def test_settled_count_waits_for_a_writer_still_catching_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_soak, "STORE_SETTLE_S", 10.0)
    db = tmp_path / "metrics.db"
    assert stored_records(db, "chaos_delay") == 0  # no file yet
    store = LocalStore(db)
    store.append_many([record(i) for i in range(10)] + [record(99, "other")])

    def late_batches() -> None:
        writer = LocalStore(db)
        for start in (10, 20):
            time.sleep(0.2)
            writer.append_many([record(i) for i in range(start, start + 10)])
        writer.close()

    thread = threading.Thread(target=late_batches)
    thread.start()
    try:
        assert settled_count(db, "chaos_delay") == 30
    finally:
        thread.join()
        store.close()
