"""A real local HTTP server standing in for a Slack incoming webhook, scriptable to fail.

Each POST is recorded (path, JSON body); the next answers can be scripted: a status with an
optional ``Retry-After``, or a hang longer than the client's timeout.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int = 200
    retry_after: str | None = None
    hang_s: float = 0.0
    body: str = "ok"


class SlackServer:
    """Records posts in ``posts`` (successful ones in ``delivered``)."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.delivered: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._script: list[Answer] = []
        self._default = Answer()
        self._lock = threading.Lock()
        self._release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.posts.append(payload)
                    server.paths.append(self.path)
                    answer = server._script.pop(0) if server._script else server._default
                if answer.hang_s:
                    server._release.wait(answer.hang_s)
                elif 200 <= answer.status < 300:
                    # Recorded before answering: the client returns as soon as it reads the
                    # answer, and a test may look at ``delivered`` right then.
                    with server._lock:
                        server.delivered.append(payload)
                body = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    if answer.retry_after is not None:
                        self.send_header("Retry-After", answer.retry_after)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    return  # the client gave up (a hung answer timed out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/s3cr3tT0ken"

    def script(self, *answers: Answer) -> None:
        with self._lock:
            self._script.extend(answers)

    def always(self, answer: Answer) -> None:
        with self._lock:
            self._default = answer

    def start(self) -> SlackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def running_slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    try:
        yield server
    finally:
        server.stop()
