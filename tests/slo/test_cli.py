"""The local scheduler and Slack sink, run as the real processes the local stack starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scripts import procs
from shared.slo.alerting import violation_message
from shared.slo.local_scheduler import next_tick, summarize
from shared.slo.slack_sink import render
from tests import services

ROOT = Path(__file__).resolve().parents[2]

DOC = {
    "slo": "graphAsk-latency",
    "sli": "latency",
    "severity": "page",
    "observed_text": "p95 2000 ms",
    "objective": "p95 < 900 ms",
    "window": "5m",
    "window_start": datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
    "window_end": datetime(2026, 11, 26, 12, 5, tzinfo=UTC),
    "burn_rate": 8.0,
    "alerts": [{"rule": "slow-burn", "condition": "6x over 6h confirmed by 30m"}],
    "detected_at": datetime(2026, 11, 26, 12, 5, 3, tzinfo=UTC),
}
SUMMARY = {
    "evaluated": 4,
    "ok": ["insights-delivery"],
    "violations": {"new": ["graphAsk-latency"], "ongoing": ["general-errors"]},
    "recoveries": [],
    "no_data": ["graphAsk-errors"],
    "alerts": {"sent": ["x"], "failed": [], "pending": 0},
    "errors": {},
}


def test_render_block_kit_as_text() -> None:
    text = render(violation_message(DOC, "http://127.0.0.1:5173/admin"))
    assert text.splitlines()[0] == ":rotating_light: SLO violation: graphAsk-latency (page)"
    assert "  Observed: p95 2000 ms" in text
    assert "  Objective: p95 < 900 ms" in text
    assert "  Window: 2026-11-26 12:00 to 12:05 UTC (5m)" in text
    assert "  Burn rate: 8.00x budget" in text
    assert "slow-burn: 6x over 6h confirmed by 30m" in text
    assert "  link: http://127.0.0.1:5173/admin" in text


def test_summary_line() -> None:
    assert summarize(200, SUMMARY) == (
        "HTTP 200 | 4 SLOs | ok 1 | violations 2 (new: graphAsk-latency; ongoing: general-errors)"
        " | recovered - | no data 1 | alerts sent 1 failed 0 pending 0"
    )
    assert summarize(500, {"error": "config_invalid", "message": "bad file"}) == (
        "HTTP 500 config_invalid: bad file"
    )
    blind = {**SUMMARY, "errors": {"graphAsk-errors": ["5m: bad filter"]},
             "no_data_alerts": ["insights-delivery"],
             "alerts": {**SUMMARY["alerts"], "deferred": ["y", "z"]}}  # fmt: skip
    assert summarize(503, {"error": "slo_errors", "summary": blind}) == (
        "HTTP 503 slo_errors: HTTP 503 | 4 SLOs | ok 1 | violations 2 (new: graphAsk-latency;"
        " ongoing: general-errors) | recovered - | no data 1 | alerts sent 1 failed 0 pending 0"
        " | no-data alerts insights-delivery | deferred by Slack 2 | errors graphAsk-errors"
    )
    assert next_tick(1000.0, 300) == 1200.0
    assert next_tick(1200.0, 300) == 1500.0


def test_slack_sink_prints_alerts_and_stops_on_sigterm() -> None:
    port = services.free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    sink = services.start_process(
        "slack-sink", [sys.executable, "-m", "shared.slo.slack_sink", "--port", str(port)], port,
        env=env, cwd=str(ROOT),
    )  # fmt: skip
    try:
        payload = json.dumps(violation_message(DOC), default=str).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/services/local", data=payload, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as response:
            assert (response.status, response.read()) == (200, b"ok")
    finally:
        sink.stop()
    assert sink.proc.returncode == 0
    output = sink.log.read_text()
    assert "SLO violation: graphAsk-latency (page)" in output
    assert "local Slack sink: stopped" in output


class _Monitor(BaseHTTPRequestHandler):
    calls: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.calls.append(self.path)
        body = json.dumps(SUMMARY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def monitor_endpoint() -> Iterator[tuple[str, list[str]]]:
    _Monitor.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Monitor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", _Monitor.calls
    server.shutdown()
    server.server_close()


def test_local_scheduler_calls_periodically_and_stops_on_sigterm(
    monitor_endpoint: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, calls = monitor_endpoint
    scheduler = procs.spawn(
        "scheduler",
        [sys.executable, "-m", "shared.slo.local_scheduler", "--url", url,
         "--interval", "0.3", "--now"],
        port=None, log_dir=tmp_path, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(calls) >= 3
        os.killpg(scheduler.pid, signal.SIGTERM)
        assert scheduler.proc.wait(10) == 0
    finally:
        scheduler.stop()
    log = scheduler.log
    lines = log.read_text().splitlines()
    assert lines[-1] == "local scheduler: stopped"
    runs = [line for line in lines if " slo_monitor HTTP 200 | 4 SLOs" in line]
    assert len(runs) >= 3


def test_local_scheduler_reports_an_unreachable_monitor() -> None:
    port = services.free_port()
    done = subprocess.run(
        [sys.executable, "-m", "shared.slo.local_scheduler", "--url",
         f"http://127.0.0.1:{port}/", "--interval", "1", "--now", "--count", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert done.returncode == 0
    assert "slo_monitor unreachable:" in done.stdout
