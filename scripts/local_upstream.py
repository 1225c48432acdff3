"""A tiny HTTP service the local stack's chaos_proxy forwards to: the stand-in upstreams.

Routes (every answer is JSON, HTTP/1.1 with keep-alive):

- ``GET /health``: ``{"ok": true}``.
- ``POST /llm/v1/chat/completions``: a minimal OpenAI-style chat completion echoing the last user
  message, so ``chaos_proxy/local-llm/v1/chat/completions`` (and ``llm``) behaves like an LLM API.
- ``POST /neo4j/db/neo4j/tx/commit``: the Neo4j stand-in (upstream ``neo4j``). It speaks Neo4j's
  HTTP transaction API but runs no Cypher: whatever the statement, it answers the facts
  (``topic, relation, object`` rows) of the topics of :data:`KNOWLEDGE` named in the statement's
  ``$question`` parameter. Deterministic: the same question always gets the same rows.
- ``POST /insights/deliveries``: the insights sink (upstream ``insights``): accepts
  ``{"insight": {...}, ...}``, counts it, and says ``duplicate`` for a repeated
  ``Idempotency-Key``. ``GET /insights/deliveries``: how many were accepted, the last ids.
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
from collections import OrderedDict
from types import FrameType
from typing import Any, Final, cast
from urllib.parse import SplitResult, parse_qs, urlsplit

HOST = "127.0.0.1"
MAX_SLEEP_MS = 10_000
MAX_BODY = 1 << 20
ECHOED_HEADERS = ("user-agent", "x-forwarded-for", "traceparent", "x-cloud-trace-context")
NEO4J_PATH = "/neo4j/db/neo4j/tx/commit"
INSIGHTS_PATH = "/insights/deliveries"
#: Idempotency keys the sink remembers (oldest forgotten first).
REMEMBERED_KEYS = 10_000

#: The stand-in knowledge graph: topic -> (relation, object) edges.
KNOWLEDGE: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "Neo4j": (("IS_A", "graph database"), ("QUERIED_WITH", "Cypher")),
    "Cypher": (("IS_A", "query language"), ("USED_BY", "Neo4j")),
    "Firestore": (("IS_A", "document database"), ("RUNS_ON", "Google Cloud")),
    "Cloud Functions": (("IS_A", "serverless platform"), ("SCALES_TO", "zero instances")),
    "circuit breaker": (("PROTECTS", "callers from a failing dependency"), ("HAS_STATE", "open")),
    "retry": (("NEEDS", "backoff with jitter"), ("HANDLES", "transient failures")),
    "cache": (("SERVES", "stale answers when the source fails"), ("HAS", "a TTL")),
    "LLM": (("IS_A", "large language model"), ("FALLS_BACK_TO", "a smaller model")),
    "SLO": (("MEASURES", "what users see"), ("HAS", "an error budget")),
    "payments API": (("CALLED_BY", "the checkout service"), ("OWNED_BY", "the payments team")),
    "search index": (("OWNED_BY", "the search team"), ("FED_BY", "the ingest pipeline")),
}


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


def graph_facts(body: bytes) -> tuple[int, dict[str, Any]]:
    """A Neo4j HTTP API answer: the facts of each topic named in ``$question`` (400: malformed)."""
    try:
        request = json.loads(body or b"null")
        question = str(request["statements"][0]["parameters"]["question"])
    except (ValueError, KeyError, IndexError, TypeError):
        error = {
            "code": "Neo.ClientError.Request.Invalid",
            "message": "body must be {statements: [{statement, parameters: {question}}]}",
        }
        return 400, {"results": [], "errors": [error]}
    lowered = question.lower()
    rows = [
        {"row": [topic, relation, obj], "meta": [None, None, None]}
        for topic, edges in KNOWLEDGE.items()
        if topic.lower() in lowered
        for relation, obj in edges
    ]
    columns = ["topic", "relation", "object"]
    return 200, {"results": [{"columns": columns, "data": rows}], "errors": []}


class InsightsSink:
    """What the insights sink accepted: a count and the remembered idempotency keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, str] = OrderedDict()
        self.accepted = 0

    def accept(self, body: bytes, key: str | None) -> tuple[int, dict[str, Any]]:
        try:
            document = json.loads(body or b"null")
            insight = document["insight"]
        except (ValueError, KeyError, TypeError):
            insight = None
        if not isinstance(insight, dict) or not insight:
            return 400, {"error": "body must be JSON with a non-empty insight object"}
        with self._lock:
            if key and key in self._keys:
                return 200, {"accepted": True, "id": self._keys[key], "duplicate": True}
            self.accepted += 1
            delivery = f"ins-{self.accepted}"
            if key:
                self._keys[key] = delivery
                if len(self._keys) > REMEMBERED_KEYS:
                    self._keys.popitem(last=False)
        return 200, {"accepted": True, "id": delivery, "duplicate": False}

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {"accepted": self.accepted, "last": list(self._keys.values())[-20:]}


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
        # A server span under the caller's, so a local trace shows the upstream's own time.
        from opentelemetry.trace import SpanKind

        from shared.obs import telemetry

        url = urlsplit(self.path)
        with telemetry.tracer("scripts.local_upstream").start_as_current_span(
            f"{self.command} {url.path}",
            context=telemetry.extract({k.lower(): v for k, v in self.headers.items()}),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": self.command, "url.path": url.path},
        ):
            self._answer(url)

    def _answer(self, url: SplitResult) -> None:
        try:
            body = self._body()
            if url.path == "/health":
                self._send(200, {"ok": True})
                return
            if url.path == "/llm/v1/chat/completions" and self.command == "POST":
                self._send(*chat_completion(body))
                return
            if url.path == NEO4J_PATH and self.command == "POST":
                self._send(*graph_facts(body))
                return
            if url.path == INSIGHTS_PATH and self.command in ("POST", "GET"):
                sink = cast(Server, self.server).insights
                if self.command == "GET":
                    self._send(200, sink.summary())
                else:
                    self._send(*sink.accept(body, self.headers.get("Idempotency-Key")))
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

    def __init__(self, address: tuple[str, int], handler: type[Handler]) -> None:
        super().__init__(address, handler)
        self.insights = InsightsSink()


def serve(port: int) -> Server:
    """Start serving on 127.0.0.1:``port`` in a background thread; ``shutdown()`` stops it."""
    server = Server((HOST, port), Handler)
    threading.Thread(target=server.serve_forever, name="local-upstream", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Demo upstream for the local chaos_proxy.")
    parser.add_argument("--port", type=int, default=8084)
    args = parser.parse_args(argv)
    from shared.obs import telemetry

    telemetry.start("local-upstream")
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
