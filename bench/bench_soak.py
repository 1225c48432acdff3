"""Soak at the thread limit: ``chaos_delay?p=0&d=50`` under 64 connections for 60 s, as served
by the local stack (request records written to the SQLite store), next to the bare ``d`` floor.

Both servers run with the local stack's settings (one gunicorn worker, ``THREADS=64``): 64
keep-alive connections keep every request thread busy. The floor is a bare function sleeping the
same uniform ``d..2d`` (``bench/hello``'s ``sleep``) on the same server, without the store; the
gap between the two p99s is what ``@observed``, chaos_delay's work and the store add at the
thread limit. chaos_delay gets ``REQUEST_SINK=shared.slo.local_store:batch_writer_from_env`` and
its own ``LOCAL_METRICS_DB``, as in ``make run``, while a neighbour writes the same file (the rest
of the stack's functions, 200 single-record transactions a second); after the soak every
answered request must be in the store (records are written off the request thread, in batches).

Targets: 0 errors; every answered request stored; p99 <= 1.2x the floor's p99 (a per-request
SQLite write on the request thread lifted it from 110 ms to 187 ms, max 1.4 s, in the local
stack; here, with the neighbour writing, from 105 to 131 ms, max 256 ms). Load: ``wrk``
pinned apart from the server when installed (``make bench`` installs it), else Python client
threads. ``SOAK_SECONDS`` / ``SOAK_FLOOR_SECONDS`` shorten the runs (defaults 60 and 20).
Run: ``python -m bench.bench_soak``.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.bench_chaos import (
    HELLO,
    Load,
    Report,
    closed_loop,
    entry,
    parse_wrk,
    percentile,
    server_env,
    serving,
    wrk_duration_ms,
)
from scripts import procs
from shared.obs.requests import RequestRecord
from shared.settings import Env
from shared.slo.local_store import LocalStore

HOST = procs.HOST
CONCURRENCY = 64
DELAY_MS = 50
TARGET_P99_RATIO = 1.2
SINK = "shared.slo.local_store:batch_writer_from_env"
#: How long the store may take to hold every record once the load stops (seconds).
STORE_SETTLE_S = 10.0
#: The rest of the local stack writing the same file meanwhile: single-record transactions per
#: second, as the other functions (chaos_proxy, graph_ask, slo_monitor) append theirs.
NEIGHBOUR_WRITES_PER_S = 200


@dataclass(frozen=True)
class Soak:
    """What one soak run measured (milliseconds)."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def wrk_max_ms(output: str) -> float:
    """The ``Max`` of wrk's latency line (``Latency 75.1ms 12.3ms 1.40s 80.00%``), in ms."""
    match = re.search(r"^\s+Latency\s+\S+\s+\S+\s+(\S+)\s", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no latency line in wrk output:\n{output}")
    return wrk_duration_ms(match.group(1))


def soak(load: Load, port: int, path: str, seconds: float) -> Soak:
    """``CONCURRENCY`` closed-loop connections on ``path`` for ``seconds``."""
    if load.wrk is None:
        result = closed_loop(port, path, CONCURRENCY, seconds)
        lat = result.latencies_ms or [0.0]
        return Soak(
            result.requests,
            result.errors,
            result.seconds,
            percentile(lat, 50),
            percentile(lat, 99),
            max(lat),
        )
    output = load.wrk_output(port, path, seconds, CONCURRENCY, "--timeout", "5s")
    parsed = parse_wrk(output)
    p50, p99 = parsed.reported or (float("nan"), float("nan"))
    return Soak(parsed.requests, parsed.errors, parsed.seconds, p50, p99, wrk_max_ms(output))


def stored_records(db: Path, function: str) -> int:
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
        row = conn.execute("SELECT COUNT(*) FROM requests WHERE function = ?", (function,))
        return int(row.fetchone()[0])


def settled_count(db: Path, function: str) -> int:
    """The store's record count once it stops growing (the writer has caught up)."""
    deadline = time.monotonic() + STORE_SETTLE_S
    count = stored_records(db, function)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        again = stored_records(db, function)
        if again == count:
            break
        count = again
    return count


@contextlib.contextmanager
def neighbours_writing(db: Path, per_s: float) -> Iterator[None]:
    """Another writer on ``db`` for the block: one record per transaction, ``per_s`` a second."""
    stop = threading.Event()

    def write() -> None:
        store = LocalStore(db)
        i = 0
        try:
            while not stop.wait(1.0 / per_s):
                i += 1
                at = time.time()
                store.append(
                    RequestRecord("neighbour", "GET", "/", 200, 1.0, f"{i:032x}", False, at)
                )
        finally:
            store.close()

    thread = threading.Thread(target=write, name="neighbour-writer", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def describe(run: Soak) -> str:
    return (
        f"{run.rps:5.0f} req/s  p50 {run.p50_ms:5.1f}  p99 {run.p99_ms:5.1f}  "
        f"max {run.max_ms:6.1f} ms"
    )


def bench_soak(group: procs.ProcessGroup, report: Report, state: Path) -> None:
    env = Env()
    seconds = env.number("SOAK_SECONDS", 60.0, low=1.0, high=3600.0)
    floor_seconds = env.number("SOAK_FLOOR_SECONDS", 20.0, low=1.0, high=3600.0)
    env.check()
    load = Load.detect()
    path = f"/?p=0&d={DELAY_MS}"
    print(
        f"\nsoak: {CONCURRENCY} connections on d={DELAY_MS} (the thread limit), "
        f"{seconds:g} s chaos_delay with the local SQLite store, {floor_seconds:g} s bare floor "
        f"({load.describe(CONCURRENCY)})",
        flush=True,
    )
    with serving(group, "sleep", HELLO, "sleep", server_env(), load.server_argv) as port:
        soak(load, port, path, 2.0)  # warm up: gunicorn starts its threads on demand
        floor = soak(load, port, path, floor_seconds)
    report.add("bare sleep d..2d (the floor)", describe(floor), "0 errors", floor.errors == 0)
    db = state / "metrics.db"
    chaos_env = server_env({"LOCAL_METRICS_DB": str(db), "REQUEST_SINK": SINK})
    with serving(
        group, "chaos_delay", entry("chaos_delay"), "chaos_delay", chaos_env, load.server_argv
    ) as port:
        soak(load, port, path, 2.0)
        before = settled_count(db, "chaos_delay")
        with neighbours_writing(db, NEIGHBOUR_WRITES_PER_S):
            run = soak(load, port, path, seconds)
        stored = settled_count(db, "chaos_delay") - before
    report.add(
        f"chaos_delay, {seconds:g} s, SQLite store", describe(run), "0 errors", run.errors == 0
    )
    # wrk counts only answers it read before its deadline; the server finishes the (at most 64)
    # requests still in flight then, so the store may hold a few more.
    report.add(
        "requests stored in the SQLite store",
        f"{stored} of {run.requests} answered",
        f">= {run.requests}",
        stored >= run.requests,
    )
    ratio = run.p99_ms / floor.p99_ms
    report.add(
        "chaos_delay p99 / floor p99",
        f"{ratio:.2f}x  (+{run.p99_ms - floor.p99_ms:.1f} ms)",
        f"<= {TARGET_P99_RATIO}x",
        ratio <= TARGET_P99_RATIO,
    )


def main() -> int:
    report = Report()
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp,
        procs.ProcessGroup(Path(tmp)) as group,
    ):
        try:
            bench_soak(group, report, Path(tmp))
        except (procs.ProcessError, RuntimeError, OSError) as exc:
            report.add("soak", f"FAILED: {exc}"[:300], "runs", False)
    print(f"\nbench_soak finished in {time.monotonic() - began:.0f} s")
    if report.failed:
        print("missed: " + "; ".join(r.name for r in report.failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
