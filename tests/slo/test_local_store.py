"""The SQLite request store: concurrent writers in threads and processes, window queries."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from shared.obs.requests import RequestRecord
from shared.slo.backends.local import parse_query
from shared.slo.local_store import LocalStore, SqliteRequestSink, sink_from_env
from tests.slo.helpers import TICK, Rec, traffic

ROOT = Path(__file__).resolve().parents[2]


def test_counts_and_latencies_by_function_and_window(local_store: LocalStore) -> None:
    traffic(local_store, "a", start=TICK - 300, end=TICK, count=100, errors=3, slow=5,
            injected=True)  # fmt: skip
    traffic(local_store, "b", start=TICK - 300, end=TICK, count=10, errors=10)
    local_store.append(Rec("a", 500, 1.0, TICK))  # at the window's end: excluded (half-open)
    local_store.append(Rec("a", 404, 1.0, TICK - 1))  # a client error is not an SLO error
    counts = local_store.counts(["a"], TICK - 300, TICK)
    assert (counts.total, counts.bad, counts.injected_bad) == (101, 3, 3)
    assert local_store.counts(["a"], TICK - 300, TICK, error_status_min=400).bad == 4
    assert local_store.counts(["*"], TICK - 300, TICK).total == 111
    assert local_store.counts(["a", "b"], TICK - 300, TICK).bad == 13
    latencies = local_store.latencies(["a"], TICK - 300, TICK)
    assert len(latencies) == 101
    assert latencies == sorted(latencies)
    assert latencies[-5:] == [2000.0] * 5


def test_wal_mode(local_store: LocalStore) -> None:
    local_store.append(Rec("a", 200, 1.0, TICK))
    conn = local_store._connection()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sink_stores_obs_request_records(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    sink = sink_from_env({"LOCAL_METRICS_DB": str(path)})
    assert isinstance(sink, SqliteRequestSink)
    assert sink_from_env({"LOCAL_METRICS_DB": str(path)}) is sink
    assert sink_from_env({}) is None
    sink(RequestRecord("chaos_delay", "GET", "/", 502, 12.5, "abc", True, TICK - 10))
    counts = LocalStore(path).counts(["chaos_delay"], TICK - 300, TICK)
    assert (counts.total, counts.bad, counts.injected_bad) == (1, 1, 1)


def test_sink_never_raises(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "dir.db").mkdir()  # a directory where the database file should be
    sink = SqliteRequestSink(LocalStore(tmp_path / "dir.db"))
    sink(Rec("a", 200, 1.0, TICK))
    assert "could not store request record" in caplog.text


def test_threads_write_safely(local_store: LocalStore) -> None:
    def write(n: int) -> None:
        for i in range(100):
            local_store.append(Rec(f"f{n}", 200, float(i), TICK - 100 + i * 0.5))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert local_store.counts(["*"], TICK - 300, TICK).total == 800


WRITER = textwrap.dedent(
    """
    import sys
    from shared.obs.requests import RequestRecord
    from shared.slo.local_store import sink_from_env
    sink = sink_from_env()
    for i in range(300):
        sink(RequestRecord(sys.argv[1], "GET", "/", 200 if i % 10 else 500, 5.0, "t", False,
                           float(sys.argv[2]) - 1 - i * 0.1))
    """
)


def test_several_processes_write_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    env = {"LOCAL_METRICS_DB": str(path), "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, f"fn{n}", str(TICK)], env=env, cwd=ROOT)
        for n in range(4)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    counts = LocalStore(path).counts(["*"], TICK - 300, TICK)
    assert (counts.total, counts.bad) == (1200, 120)


def test_local_query_validation() -> None:
    assert parse_query("good_bad_ratio", {"function": "a", "functions": ["b"]})[1] == [
        "function / functions: give exactly one (a name, a list of names, or '*')"
    ]
    assert parse_query("good_bad_ratio", {"function": "a", "error_status_min": 200})[1] == [
        "error_status_min: must be an integer 400..599; got 200"
    ]
    assert parse_query("good_bad_ratio", {"functions": ["a", ""]})[1] == [
        "functions: must be non-empty names; got ['a', '']"
    ]


@pytest.mark.parametrize("q", [50, 90, 95, 99])
def test_sql_percentile_matches_the_python_one(local_store: LocalStore, q: int) -> None:
    from shared.slo.backends.local import percentile

    local_store.append_many(Rec("a", 200, float((i * 37) % 101), TICK - 1 - i) for i in range(97))
    summary = local_store.latency_summary(["a"], TICK - 300, TICK, threshold_ms=90, q=q)
    values = local_store.latencies(["a"], TICK - 300, TICK)
    assert summary.total == 97
    assert summary.slow == sum(1 for v in values if v >= 90)
    assert summary.percentile_ms == pytest.approx(percentile(values, q))
    empty = local_store.latency_summary(["b"], TICK - 300, TICK, threshold_ms=90, q=q)
    assert (empty.total, empty.percentile_ms) == (0, None)
