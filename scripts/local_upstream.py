"""A tiny HTTP service the local stack's chaos_proxy forwards to (``demo`` and ``local-llm``).

Routes (every answer is JSON, HTTP/1.1 with keep-alive):

- ``GET /health``: ``{"ok": true}``.
- ``POST /llm/v1/chat/completions``: a minimal OpenAI-style chat completion echoing the last user
  message, so ``chaos_proxy/local-llm/v1/chat/completions`` behaves like an LLM API.
- anything else: an echo of the request (method, path, query, selected headers, body size).
  ``?status=<100..599>`` answers with that status and ``?sleep_ms=<0..10000>`` waits first, so the
  upstream itself can be slow or failing.

Usage: ``python -m scripts.local_upstream --port 8084`` (binds 127.0.0.1; SIGTERM/SIGINT stop it).
"""

from __future__ import annotations

import argparse
import http.server
import json
import signal
import threading
import time
import uuid
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
MAX_SLEEP_MS = 10_000
MAX_BODY = 1 << 20
ECHOED_HEADERS = ("user-agent", "x-forwarded-for", "traceparent", "x-cloud-trace-context")


class BadRequest(ValueError):
    """A query parameter is out of range."""


def _int_param(query: dict[str, list[str]], name: str, low: int, high: int, default: int) -> int:
    raw = query.get(name, [""])[0]
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise BadRequest(f"{name} must be an integer between {low} and {high}, got {raw!r}")
    return value


def chat_completion(body: bytes) -> tuple[int, dict[str, Any]]:
    """An OpenAI-shaped answer to a chat-completions request (400 for a malformed one)."""
    try:
        request = json.loads(body or b"null")
        messages = request["messages"]
        model = str(request.get("model", "local-llm"))
        last = next(m for m in reversed(messages) if m.get("role") == "user")
        text = str(last.get("content", ""))
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        error = {"message": "body must be JSON with messages: [{role: user, content}]"}
        return 400, {"error": {**error, "type": "invalid_request_error"}}
    answer = f"(local-llm) {text[:200]}"
    return 200, {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len(answer.split())},
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-upstream/1"
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (40 ms on Linux) on a kept-alive connection.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would drown the stack's output under load."""

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise BadRequest(f"body must be at most {MAX_BODY} bytes, got {length}")
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        url = urlsplit(self.path)
        try:
            body = self._body()
            if url.path == "/health":
                self._send(200, {"ok": True})
                return
            if url.path == "/llm/v1/chat/completions" and self.command == "POST":
                self._send(*chat_completion(body))
                return
            query = parse_qs(url.query, keep_blank_values=True)
            sleep_ms = _int_param(query, "sleep_ms", 0, MAX_SLEEP_MS, 0)
            status = _int_param(query, "status", 200, 599, 200)
        except BadRequest as exc:
            self._send(400, {"error": str(exc)})
            return
        if sleep_ms:
            time.sleep(sleep_ms / 1000)
        headers = {h: self.headers[h] for h in ECHOED_HEADERS if self.headers.get(h)}
        self._send(
            status,
            {
                "upstream": "local",
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "headers": headers,
                "body_bytes": len(body),
            },
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve(port: int) -> Server:
    """Start serving on 127.0.0.1:``port`` in a background thread; ``shutdown()`` stops it."""
    server = Server((HOST, port), Handler)
    threading.Thread(target=server.serve_forever, name="local-upstream", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo upstream for the local chaos_proxy.")
    parser.add_argument("--port", type=int, default=8084)
    args = parser.parse_args(argv)
    server = serve(args.port)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"local upstream on http://{HOST}:{server.server_port}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
