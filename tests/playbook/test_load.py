"""The load generator against a real loopback server: counts, cap, injected header, latency."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.playbook import LoadProvider, run_load


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counter = itertools.count(1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        n = next(self.counter)
        injected = n % 5 == 0
        body = b'{"ok": %s}' % (b"false" if injected else b"true")
        self.send_response(503 if injected else 200)
        if injected:
            self.send_header("X-Chaos-Injected", "true")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.counter = itertools.count(1)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/x"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def test_counts_statuses_and_injections(server: str) -> None:
    report = run_load(LoadProvider(url=server, rate_rps=50, duration_s=0.4, max_requests=100))
    assert report.planned == 20
    assert report.sent == 20
    assert report.completed == 20
    assert report.status_counts == {"200": 16, "503": 4}
    assert report.injected == 4
    assert report.ok_rate == pytest.approx(0.8)
    assert report.latency_ms is not None
    assert report.latency_ms["count"] == 20
    assert 0.3 <= report.duration_s < 3.0


def test_hard_cap_on_requests(server: str) -> None:
    report = run_load(LoadProvider(url=server, rate_rps=100, duration_s=1.0, max_requests=7))
    assert (report.planned, report.sent, report.completed) == (7, 7, 7)


def test_unreachable_target_counts_connection_errors() -> None:
    from tests.services import free_port

    url = f"http://127.0.0.1:{free_port()}/"
    report = run_load(LoadProvider(url=url, rate_rps=20, duration_s=0.2, timeout_s=1))
    assert report.sent == 4
    assert report.connection_errors == 4
    assert report.ok_rate == 0.0
    assert report.latency_ms is None


def test_stop_ends_scheduling(server: str) -> None:
    stop = threading.Event()
    stop.set()
    report = run_load(LoadProvider(url=server, rate_rps=10, duration_s=5), stop=stop)
    assert report.sent == 0


def test_stop_midway_sends_no_more(server: str) -> None:
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    report = run_load(LoadProvider(url=server, rate_rps=20, duration_s=5), stop=stop)
    timer.cancel()
    assert 4 <= report.sent <= 9
    assert report.completed == report.sent
    assert report.duration_s < 2
