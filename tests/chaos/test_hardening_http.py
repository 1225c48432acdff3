"""Defect 9 of issue 12 over real HTTP: drops cannot take every request thread, and the server
bounds request lines and headers."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from tests import services
from tests.chaos import servers

pytestmark = pytest.mark.slow

THREADS = 4
HOLD_S = 6


def _drop_request(service: services.Service) -> socket.socket:
    """Open a connection that asks for a drop; the server holds it (or refuses at once)."""
    conn = socket.create_connection(("127.0.0.1", service.port), timeout=HOLD_S + 5)
    conn.sendall(b"GET /chaos_proxy?mode=drop HTTP/1.1\r\nHost: x\r\n\r\n")
    return conn


@pytest.fixture
def proxy(function_server: Callable[..., services.Service]) -> services.Service:
    return function_server(
        "chaos_proxy",
        {"CHAOS_ENABLED": "true", "CHAOS_AUTH": "none", "THREADS": str(THREADS),
         "CHAOS_DROP_HOLD_S": str(HOLD_S)},
    )  # fmt: skip


@pytest.fixture
def held(proxy: services.Service) -> Iterator[list[socket.socket]]:
    """As many drop requests as the function has threads, all sent at once."""
    conns = [_drop_request(proxy) for _ in range(THREADS)]
    yield conns
    for conn in conns:
        conn.close()


def test_drops_beyond_the_cap_are_refused_and_control_requests_still_served(
    proxy: services.Service, held: list[socket.socket]
) -> None:
    # Before: THREADS concurrent drops held every thread for the hold time; nobody was served,
    # not even the operator's request to stop the experiment.
    base = f"http://{proxy.host}"
    started = time.monotonic()
    ok = requests.get(f"{base}/chaos_proxy?mode=ok", timeout=2)
    assert ok.status_code == 200
    listed = requests.get(f"{base}/chaos_proxy/_experiments?limit=1", timeout=2)
    assert listed.status_code in (200, 503)  # answered (no Firestore here: 503 store_unavailable)
    assert time.monotonic() - started < 3
    # Half the threads (the default cap) hold; the rest were refused at once with Retry-After.
    answers = []
    for conn in held:
        conn.settimeout(1.0)
        try:
            answers.append(conn.recv(4096))
        except TimeoutError:
            answers.append(b"")  # still held
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert len(refused) == THREADS // 2, answers
    for answer in refused:
        assert f"Retry-After: {HOLD_S}".encode() in answer
        assert b'"error":"too_many_drops"' in answer


def test_request_line_and_header_limits(proxy: services.Service) -> None:
    # Before: functions-framework runs gunicorn with no request-line limit; a 10 MB line cost
    # 11-21 s of worker CPU before its 400.
    for request in (
        b"GET /chaos_proxy?mode=ok&x=" + b"a" * 10_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /chaos_proxy?mode=ok HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
        b"GET /chaos_proxy?mode=ok HTTP/1.1\r\n" + b"X-N: 1\r\n" * 150 + b"\r\n",
    ):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as conn:
            # Refused before we finished sending is the point.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.sendall(request)
            answer = conn.recv(4096)
        assert answer.startswith(b"HTTP/1.1 4"), answer[:200]  # 400 (gunicorn's own page)
        assert time.monotonic() - started < 2.0
    assert requests.get(f"http://{proxy.host}/chaos_proxy?mode=ok", timeout=5).status_code == 200


def test_clients_that_stall_mid_headers_lose_their_threads(
    function_server: Callable[..., services.Service],
) -> None:
    # Before: THREADS clients sending part of their headers held every thread until they left.
    proxy = function_server(
        "chaos_proxy",
        {"CHAOS_ENABLED": "true", "CHAOS_AUTH": "none", "THREADS": str(THREADS),
         "SERVE_READ_TIMEOUT_S": "1"},
    )  # fmt: skip
    stalled = []
    for _ in range(THREADS * 2):
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        conn.sendall(b"GET /chaos_proxy?mode=ok HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        stalled.append(conn)
    try:
        started = time.monotonic()
        r = requests.get(f"http://{proxy.host}/chaos_proxy?mode=ok", timeout=10)
        assert r.status_code == 200
        assert time.monotonic() - started < 5  # about two read timeouts, never "until they leave"
    finally:
        for conn in stalled:
            conn.close()


def test_the_launcher_is_functions_framework_plus_limits() -> None:
    """Pins the functions-framework internals ``shared.chaos.serve`` relies on."""
    from functions_framework._http.gunicorn import GunicornApplication
    from gunicorn.workers.gthread import TConn, ThreadWorker

    from shared.chaos.serve import WORKER_CLASS, ReadTimeoutWorker

    app = GunicornApplication(
        object(), "127.0.0.1", 0, False, limit_request_line=8190, worker_class=WORKER_CLASS
    )
    assert app.cfg.limit_request_line == 8190
    assert app.cfg.worker_class is ReadTimeoutWorker
    # The worker hands each connection (a TConn with a ``sock``) to its threads by enqueue_req.
    assert "enqueue_req" in vars(ThreadWorker)
    assert "sock" in TConn.__init__.__code__.co_names
    assert GunicornApplication(object(), "127.0.0.1", 0, False).cfg.limit_request_line == 0
    assert servers.REPO.joinpath("shared/chaos/serve.py").exists()
