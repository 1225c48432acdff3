"""Small local stand-ins for graph_ask, for the extension's unit tests.

:class:`FakeGraphAsk` answers ``POST`` like graph_ask's contract (``served``, ``cache``,
``model``, ``queue_wait_ms``); a test sets its behaviour per plan. ``python -m
tests.ctk.servers --port N [--cache off]`` runs one as its own process (the cold-start probe finds
a process by its port and starts a copy of it).
"""

from __future__ import annotations

import argparse
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Behaviour = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any], dict[str, str]]]


@dataclass
class FakeGraphAsk:
    """A cache of seen questions, a miss delay, and an optional per-request override."""

    miss_delay_s: float = 0.0
    hit_delay_s: float = 0.0
    cache: bool = True
    behaviour: Behaviour | None = None
    seen: set[str] = field(default_factory=set)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, plan: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.requests += 1
        if self.behaviour is not None:
            return self.behaviour(plan, body)
        question = str(body.get("question", ""))
        with self.lock:
            hit = self.cache and question in self.seen
            self.seen.add(question)
        time.sleep(self.hit_delay_s if hit else self.miss_delay_s)
        state = "off" if not self.cache else ("hit" if hit else "miss")
        served = "cached" if hit else "normal"
        return 200, {"answer": "ok", "served": served, "model": "m", "cache": state}, {}


def handler_for(fake: FakeGraphAsk) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            """A status page like graph_ask's: the admission queue grows with the requests."""
            data = json.dumps({"admission": {"premium_waiting": 1, "free_waiting": fake.requests}})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                body = {}
            status, answer, headers = fake.answer(self.headers.get("X-Plan", "free"), body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def serving(fake: FakeGraphAsk) -> Iterator[str]:
    """Serve ``fake`` on a free loopback port in a thread; yields its ``/graph_ask`` URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/graph_ask"
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cache", choices=("on", "off"), default="on")
    parser.add_argument("--miss-delay-ms", type=float, default=150.0)
    args = parser.parse_args()
    fake = FakeGraphAsk(miss_delay_s=args.miss_delay_ms / 1000.0, cache=args.cache == "on")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(fake))
    server.serve_forever()


if __name__ == "__main__":
    main()
