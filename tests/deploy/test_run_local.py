"""`make run` (``python -m scripts.run_local``) end to end: the whole local stack, real processes.

Each test shifts every port by a free offset (``--port-offset``) and keeps its state in a temp
dir, so it can run beside a developer's own ``make run``.
"""

from __future__ import annotations

import contextlib
import json
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
from typing import Any

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
    assert f"graph_ask      http://127.0.0.1:{ports.graph_ask}/graph_ask" in out
    assert "make playbook PLAYBOOK=" in out
    assert "admin page" in out
    assert f"curl 'http://127.0.0.1:{ports.chaos_delay}/?p=0.2&d=300'" in out
    assert "demo burst: {" in out
    assert "chaos_delay 200" in out
    assert "graphAsk 200" in out
    assert "insights 200" in out
    assert "slo_monitor: HTTP 200 | 4 SLOs" in out
    assert "rehearsal" not in out  # --once rehearses only with --rehearse
    assert "stopped." in out
    # The functions recorded the demo into the SQLite store the monitor reads, graph_ask's
    # requests under the names the local SLOs judge.
    with contextlib.closing(sqlite3.connect(tmp_path / "metrics.db")) as db:
        counts = dict(db.execute("SELECT function, COUNT(*) FROM requests GROUP BY function"))
    assert counts.get("chaos_delay", 0) >= 40
    assert counts.get("chaos_proxy", 0) >= 10
    assert counts.get("slo_monitor", 0) >= 1
    assert counts.get("graphAsk", 0) >= 8
    assert counts.get("insights", 0) >= 4
    # ... and exported their OpenTelemetry metrics into it (flushed at the latest when stopped).
    with contextlib.closing(sqlite3.connect(tmp_path / "metrics.db")) as db:
        delivered = db.execute(
            "SELECT SUM(value) FROM metric_points WHERE name = 'insights/deliveries'"
        ).fetchone()[0]
    assert delivered == counts["insights"]
    for name in ("firestore", "chaos_delay", "chaos_proxy", "slo_monitor", "scheduler"):
        assert (tmp_path / "logs" / f"{name}.log").is_file()
    assert (tmp_path / "logs" / "graph_ask.log").is_file()
    assert ports_free(ports), "a child outlived run_local"


def test_sigint_stops_every_child_and_exits_0(tmp_path: Path) -> None:
    offset = free_offset()
    ports = run_local.Ports().shifted(offset)
    # The rehearsal has its own test (the main job's); here only the interactive stop matters.
    args = ["--no-demo", "--no-rehearsal", "--port-offset", str(offset)]
    args += ["--state-dir", str(tmp_path)]
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
        scheduler_log = tmp_path / "logs" / "scheduler.log"
        deadline = time.monotonic() + 30  # the scheduler's first run, every 2 s
        while time.monotonic() < deadline and "slo_monitor HTTP 200" not in (
            scheduler_log.read_text() if scheduler_log.exists() else ""
        ):
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        rc = proc.wait(60)
        rest = proc.stdout.read()

    assert rc == 0, rest
    assert "stopped." in rest
    assert ports_free(ports)
    assert "slo_monitor HTTP 200" in scheduler_log.read_text()


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


def post_json(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    status, text = run_local.http("POST", url, json_body=body, headers=headers)
    return status, json.loads(text)


def test_graph_ask_in_the_stack_is_shaped_by_chaos_proxy_experiments(tmp_path: Path) -> None:
    offset = free_offset()
    ports = run_local.Ports().shifted(offset)
    args = ["--no-demo", "--no-rehearsal", "--port-offset", str(offset)]
    with stack_process([*args, "--state-dir", str(tmp_path)]) as proc:
        assert proc.stdout is not None
        lines = []
        while True:
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
            if line.startswith("running;"):
                break
        ask = f"http://127.0.0.1:{ports.graph_ask}/graph_ask"
        experiments = f"http://127.0.0.1:{ports.chaos_proxy}/chaos_proxy/_experiments"
        premium = {"X-Plan": "premium"}

        status, normal = post_json(ask, {"question": "What is Neo4j?"}, premium)
        assert (status, normal["served"], normal["model"]) == (200, "normal", "primary-llm")

        slow = {"upstream": "neo4j", "mode": "slow", "slow_ms": 1500, "duration_s": 60}
        assert post_json(experiments, slow)[0] == 201
        started = time.monotonic()
        status, degraded = post_json(ask, {"question": "What is Cypher?"}, premium)
        # Bounded attempts (~0.7 s), below the 1.5 s that a single unbounded one would take.
        assert time.monotonic() - started < 1.45
        assert (status, degraded["served"]) == (200, "degraded")
        status, cached = post_json(ask, {"question": "What is Neo4j?"}, premium)
        assert (cached["served"], cached["cache"]) == ("cached", "hit")

        llm_down = {"upstream": "llm", "mode": "error", "duration_s": 60}
        assert post_json(experiments, llm_down)[0] == 201
        status, fallback = post_json(ask, {"question": "What is Neo4j?"}, premium)
        assert (fallback["served"], fallback["model"]) == ("fallback", "fallback-llm")

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(60) == 0
    assert ports_free(ports)


def test_alert_button_points_at_the_status_page_not_at_fault_injection(tmp_path: Path) -> None:
    ports = run_local.Ports()
    env = run_local.stack_env(ports, tmp_path)

    assert env["ALERT_LINK_URL"] == "http://127.0.0.1:8085/graph_ask/_status"
    assert str(ports.chaos_delay) not in env["ALERT_LINK_URL"]
    assert "neo4j=http://127.0.0.1:8084/neo4j" in env["CHAOS_UPSTREAMS"]
    assert env["GRAPH_URL"] == "http://127.0.0.1:8082/chaos_proxy/neo4j"
    table = run_local.model_table(ports)
    assert table == {
        "models": {
            "primary-llm": {
                "provider": "openai",
                "base_url": "http://127.0.0.1:8082/chaos_proxy/llm/v1",
                "timeout": 2.0,
            },
            "candidate-llm": {
                "provider": "openai",
                "base_url": "http://127.0.0.1:8082/chaos_proxy/llm-candidate/v1",
                "timeout": 2.0,
            },
            "fallback-llm": {
                "provider": "openai",
                "base_url": "http://127.0.0.1:8084/llm/v1",
                "timeout": 2.0,
            },
        }
    }


EXPERIMENT = """
title: {title}
description: a rehearsal-hook test
tags: [{tag}]
steady-state-hypothesis:
  title: the flag file exists and the rehearsal setting is on
  probes:
    - type: probe
      name: flag-exists
      tolerance: true
      provider:
        type: python
        module: os.path
        func: exists
        arguments:
          path: {flag}
    - type: probe
      name: rehearsal-setting
      tolerance: "1"
      provider:
        type: python
        module: os
        func: getenv
        arguments:
          key: PLAYBOOK_REHEARSAL
method:
  - type: action
    name: {action}
    provider:
      type: python
      module: {module}
      func: {func}
      arguments:
        path: {flag}
"""


def test_rehearsal_hook_runs_chaos_and_reads_each_journal(tmp_path: Path) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    kept, removed, missing = tmp_path / "kept", tmp_path / "removed", tmp_path / "missing"
    kept.touch()
    removed.touch()
    looks = {"action": "look", "module": "os.path", "func": "exists"}
    removes = {"action": "remove", "module": "os", "func": "remove"}
    books.joinpath("holds.yaml").write_text(
        EXPERIMENT.format(title="holds", tag="weekly", flag=kept, **looks)
    )
    # The method breaks what the hypothesis checks: deviated.
    books.joinpath("deviates.yaml").write_text(
        EXPERIMENT.format(title="deviates", tag="weekly", flag=removed, **removes)
    )
    # Not steady before the method: not held, though chaos exits 0.
    books.joinpath("unsteady.yaml").write_text(
        EXPERIMENT.format(title="unsteady", tag="weekly", flag=missing, **looks)
    )
    books.joinpath("monthly.yaml").write_text(
        EXPERIMENT.format(title="monthly", tag="monthly", flag=kept, **looks)
    )
    books.joinpath("broken.yaml").write_text("title: no method\ntags: [weekly]\n")
    playbooks = run_local.weekly_playbooks(books)
    assert [p.stem for p in playbooks] == ["broken", "deviates", "holds", "unsteady"]

    verdicts = run_local.rehearse_playbooks(
        playbooks, journal_dir=tmp_path / "journals", env=dict(os.environ)
    )

    by_name = {v.playbook: v for v in verdicts}
    assert [v.label for v in verdicts] == ["failed", "deviated", "held", "failed"]
    assert (by_name["holds"].status, by_name["holds"].exit_code) == ("completed", 0)
    assert (by_name["deviates"].deviated, by_name["deviates"].exit_code) == (True, 1)
    assert (by_name["unsteady"].steady, by_name["unsteady"].exit_code) == (False, 0)
    assert (by_name["broken"].status, by_name["broken"].exit_code) == ("invalid", 1)
    assert by_name["holds"].journal == tmp_path / "journals" / "holds.json"
    assert by_name["holds"].journal.is_file()
    table = run_local.verdict_table(verdicts).splitlines()
    assert table[0].split() == ["playbook", "verdict", "status", "exit", "seconds", "journal"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["broken", "failed"],
        ["deviates", "deviated"],
        ["holds", "held"],
        ["unsteady", "failed"],
    ]


def test_main_job_rehearses_the_weekly_playbooks_and_prints_the_verdicts(tmp_path: Path) -> None:
    offset = free_offset()
    ports = run_local.Ports().shifted(offset)
    args = ["--once", "--rehearse", "--no-demo", "--port-offset", str(offset)]
    with stack_process([*args, "--state-dir", str(tmp_path)]) as proc:
        out, err = proc.communicate(timeout=400)

    assert proc.returncode == 0, f"stdout:\n{out[-6000:]}\nstderr:\n{err[-3000:]}"
    assert "rehearsal of the weekly playbooks (llm-down, neo4j-slow)" in out
    table = out[out.index("playbook  ") :].splitlines()
    assert table[1].split()[:3] == ["llm-down", "held", "completed"]
    assert table[2].split()[:3] == ["neo4j-slow", "held", "completed"]
    assert f"journals: {tmp_path / 'journals'}/" in out
    for name in ("llm-down", "neo4j-slow"):
        journal = json.loads((tmp_path / "journals" / f"{name}.json").read_text())
        assert (journal["status"], journal["deviated"]) == ("completed", False)
    assert ports_free(ports)
