"""`make run` (``python -m scripts.run_local``) end to end: the whole local stack, real processes.

Each test shifts every port by a free offset (``--port-offset``) and keeps its state in a temp
dir, so it can run beside a developer's own ``make run``.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import procs, run_local
from scripts.catalog import REPO

pytestmark = pytest.mark.slow


def free_offset() -> int:
    """An offset that puts every port of the stack on a currently free port."""
    base = run_local.Ports()
    for _ in range(50):
        offset = random.randrange(20_000, 40_000, 10)
        if not any(procs.port_in_use(p) for p in base.shifted(offset).named()):
            return offset
    raise AssertionError("no free port range found")


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def ports_free(ports: run_local.Ports) -> bool:
    """Nothing listens on any of the stack's ports any more."""
    return not any(listening(p) for p in ports.named())


@contextlib.contextmanager
def stack_process(
    args: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scripts.run_local", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # run_local stops its children on SIGTERM
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def test_once_starts_everything_runs_demo_and_monitor_then_stops(tmp_path: Path) -> None:
    offset = free_offset()
    ports = run_local.Ports().shifted(offset)
    with stack_process(
        ["--once", "--port-offset", str(offset), "--state-dir", str(tmp_path)]
    ) as proc:
        out, err = proc.communicate(timeout=180)

    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    for port in (ports.chaos_delay, ports.chaos_proxy, ports.slo_monitor, ports.upstream):
        assert f"http://127.0.0.1:{port}/" in out
    assert f"curl 'http://127.0.0.1:{ports.chaos_delay}/?p=0.2&d=300'" in out
    assert "demo burst: {" in out
    assert "chaos_delay 200" in out
    assert "slo_monitor: HTTP 200 | 4 SLOs" in out
    assert "stopped." in out
    # The functions recorded the demo into the SQLite store the monitor reads.
    with contextlib.closing(sqlite3.connect(tmp_path / "metrics.db")) as db:
        counts = dict(db.execute("SELECT function, COUNT(*) FROM requests GROUP BY function"))
    assert counts.get("chaos_delay", 0) >= 40
    assert counts.get("chaos_proxy", 0) >= 10
    assert counts.get("slo_monitor", 0) >= 1
    for name in ("firestore", "chaos_delay", "chaos_proxy", "slo_monitor", "scheduler"):
        assert (tmp_path / "logs" / f"{name}.log").is_file()
    assert ports_free(ports), "a child outlived run_local"


def test_sigint_stops_every_child_and_exits_0(tmp_path: Path) -> None:
    offset = free_offset()
    ports = run_local.Ports().shifted(offset)
    args = ["--no-demo", "--port-offset", str(offset), "--state-dir", str(tmp_path)]
    with stack_process(args, {"SLO_INTERVAL_S": "2"}) as proc:
        assert proc.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("running;"):
                break
        assert any(x.startswith("running;") for x in lines), "".join(lines)
        assert "every 2 s" in "".join(lines)
        time.sleep(2.5)  # let the local scheduler trigger at least one run
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        rc = proc.wait(60)
        rest = proc.stdout.read()

    assert rc == 0, rest
    assert "stopped." in rest
    assert ports_free(ports)
    scheduler_log = (tmp_path / "logs" / "scheduler.log").read_text()
    assert "slo_monitor HTTP 200" in scheduler_log


def test_busy_port_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    offset = free_offset()
    ports = run_local.Ports().shifted(offset)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports.chaos_proxy))
        squatter.listen()
        with stack_process(
            ["--once", "--port-offset", str(offset), "--state-dir", str(tmp_path)]
        ) as proc:
            _, err = proc.communicate(timeout=60)

    assert proc.returncode == 1
    assert f"port {ports.chaos_proxy} (chaos proxy) is already in use" in err
    assert ports_free(ports)


def test_bad_interval_is_rejected() -> None:
    with pytest.raises(run_local.StackError, match="SLO_INTERVAL_S must be a number"):
        run_local.interval_from_env({"SLO_INTERVAL_S": "soon"})
    assert run_local.interval_from_env({}) == 300.0
    assert run_local.duration_from_env({"RUN_LOCAL_DURATION_S": "0"}) == 0.0
