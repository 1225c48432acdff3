"""A real local HTTP server speaking the OpenAI chat-completions and Anthropic Messages APIs.

It validates requests the way the real APIs do (401 for a bad key, 400 for a malformed body or a
missing ``anthropic-version``) and answers per upstream model id with a scriptable behaviour: ok,
an error status (with ``Retry-After``), slow (longer than the client's timeout) or a dropped
connection. It counts the requests each model receives, so tests can prove a model was skipped.

In-process use (tests)::

    with LLMServer(openai_key="sk-test") as server:
        server.set_behavior("gpt-4o", fail(503))
        ... post to server.openai_base_url ...

Standalone use (local stack): ``python -m tests.llm_servers --port 8080 --openai-key ''``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import signal
import socket
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

#: Roles each API accepts in ``messages``.
OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
ANTHROPIC_ROLES = frozenset({"user", "assistant"})


@dataclass(frozen=True, slots=True)
class Behavior:
    """What the server does with one request for a model."""

    kind: Literal["ok", "status", "slow", "drop", "raw"]
    status: int = 200
    retry_after: str | None = None
    delay: float = 0.0
    text: str | None = None


def ok(text: str | None = None) -> Behavior:
    """Answer normally; ``text`` replaces the default echo answer."""
    return Behavior("ok", text=text)


def fail(status: int, retry_after: str | None = None) -> Behavior:
    """Answer ``status`` with the API's error body and, if given, a ``Retry-After`` header."""
    return Behavior("status", status=status, retry_after=retry_after)


def slow(seconds: float) -> Behavior:
    """Answer normally but only after ``seconds`` (cut short when the server stops)."""
    return Behavior("slow", delay=seconds)


def raw(body: str, status: int = 200) -> Behavior:
    """Answer ``status`` with ``body`` verbatim (for malformed-answer tests)."""
    return Behavior("raw", status=status, text=body)


OK = ok()
DROP = Behavior("drop")
RATE_LIMITED = fail(429, retry_after="7")
SERVER_ERROR = fail(500)
UNAVAILABLE = fail(503)
BAD_REQUEST = fail(400)


def answer_text(model: str, prompt: str) -> str:
    """The default answer: names the upstream model so a test can see who answered."""
    return f"{model} answers: {prompt}"


@dataclass(frozen=True, slots=True)
class Received:
    """One request as the server saw it."""

    api: Literal["openai", "anthropic", "other"]
    path: str
    headers: dict[str, str]
    body: Any


class _ApiError(Exception):
    def __init__(self, status: int, kind: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.param = param


_OPENAI_KINDS = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}
_ANTHROPIC_KINDS = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


class LLMServer:
    """A threaded loopback server for both APIs; start/stop in-process or use as a context."""

    def __init__(
        self,
        *,
        openai_key: str | None = "sk-test-openai",
        anthropic_key: str | None = "sk-ant-test",
        max_prompt_chars: int | None = None,
        port: int = 0,
    ) -> None:
        self.openai_key = openai_key
        self.anthropic_key = anthropic_key
        self.max_prompt_chars = max_prompt_chars
        self._port = port
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._default = OK
        self._behaviors: dict[str, Behavior] = {}
        self._queued: dict[str, deque[Behavior]] = {}
        self._counts: Counter[str] = Counter()
        self.received: list[Received] = []
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> LLMServer:
        handler = type("Handler", (_Handler,), {"llm": self})
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._stopping.clear()
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LLMServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """The ``base_url`` an OpenAI-compatible client uses (``/chat/completions`` appended)."""
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """The ``base_url`` an Anthropic client uses (``/v1/messages`` appended)."""
        return self.url

    # -- scripting ---------------------------------------------------------------------------

    def set_behavior(self, model: str, behavior: Behavior) -> None:
        """Every later request for ``model`` gets ``behavior`` (after any queued ones)."""
        with self._lock:
            self._behaviors[model] = behavior

    def set_default(self, behavior: Behavior) -> None:
        """Behaviour for models without their own."""
        with self._lock:
            self._default = behavior

    def queue(self, model: str, *behaviors: Behavior) -> None:
        """The next requests for ``model`` get ``behaviors`` in order, then the usual one."""
        with self._lock:
            self._queued.setdefault(model, deque()).extend(behaviors)

    def reset(self) -> None:
        """Forget scripts, counts and recorded requests."""
        with self._lock:
            self._default = OK
            self._behaviors.clear()
            self._queued.clear()
            self._counts.clear()
            self.received.clear()

    def requests_for(self, model: str) -> int:
        """How many well-formed, authenticated requests named ``model``."""
        with self._lock:
            return self._counts[model]

    @property
    def total_requests(self) -> int:
        with self._lock:
            return len(self.received)

    def _next_behavior(self, model: str) -> Behavior:
        with self._lock:
            self._counts[model] += 1
            queued = self._queued.get(model)
            if queued:
                return queued.popleft()
            return self._behaviors.get(model, self._default)

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server stops first; True if it is stopping."""
        return self._stopping.wait(seconds)


class _Handler(http.server.BaseHTTPRequestHandler):
    llm: LLMServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/health", "/v1/health"):
            self._send(200, {"status": "ok"})
        else:
            self._send(404, {"error": {"message": f"no route for GET {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = self.path.split("?", 1)[0].rstrip("/")
        api: Literal["openai", "anthropic", "other"] = (
            "openai"
            if path == "/v1/chat/completions"
            else "anthropic"
            if path == "/v1/messages"
            else "other"
        )
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.llm._record(Received(api, path, headers, body))
        if api == "other":
            self._send(404, {"error": {"message": f"no route for POST {self.path}"}})
            return
        try:
            if api == "openai":
                self._authorize_openai(headers)
                model, prompt = _validate_openai(body)
            else:
                self._authorize_anthropic(headers)
                model, prompt, _ = _validate_anthropic(body)
            limit = self.llm.max_prompt_chars
            if limit is not None and len(prompt) > limit:
                raise _ApiError(
                    400,
                    "context_length_exceeded",
                    f"prompt is {len(prompt)} characters; this model's limit is {limit}",
                    "messages",
                )
        except _ApiError as err:
            self._send_error(api, err)
            return
        self._behave(api, model, prompt, self.llm._next_behavior(model))

    # -- auth ----------------------------------------------------------------------------------

    def _authorize_openai(self, headers: dict[str, str]) -> None:
        key = self.llm.openai_key
        if key is None:
            return
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            raise _ApiError(401, "invalid_request_error", "You didn't provide an API key.")
        if auth[len("Bearer ") :] != key:
            raise _ApiError(401, "invalid_api_key", "Incorrect API key provided.")

    def _authorize_anthropic(self, headers: dict[str, str]) -> None:
        key = self.llm.anthropic_key
        if key is not None and headers.get("x-api-key") != key:
            raise _ApiError(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in headers:
            raise _ApiError(400, "invalid_request_error", "anthropic-version: header is required")
        if headers["anthropic-version"] != "2023-06-01":
            raise _ApiError(
                400,
                "invalid_request_error",
                f"anthropic-version: unknown version {headers['anthropic-version']!r}",
            )

    # -- answers -------------------------------------------------------------------------------

    def _behave(self, api: str, model: str, prompt: str, behavior: Behavior) -> None:
        if behavior.kind == "drop":
            self._drop()
            return
        if behavior.kind == "status":
            extra = {"Retry-After": behavior.retry_after} if behavior.retry_after else {}
            kinds = _OPENAI_KINDS if api == "openai" else _ANTHROPIC_KINDS
            kind = kinds.get(behavior.status, "api_error")
            err = _ApiError(behavior.status, kind, f"scripted {behavior.status} for {model}")
            self._send_error(api, err, extra)
            return
        if behavior.kind == "raw":
            self._send_bytes(behavior.status, (behavior.text or "").encode())
            return
        if behavior.kind == "slow" and self.llm._wait(behavior.delay):
            self._drop()
            return
        text = behavior.text if behavior.text is not None else answer_text(model, prompt)
        self._send(
            200, _openai_answer(model, text) if api == "openai" else _anthropic_answer(model, text)
        )

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_error(self, api: str, err: _ApiError, headers: dict[str, str] | None = None) -> None:
        if api == "anthropic":
            body: dict[str, Any] = {
                "type": "error",
                "error": {"type": err.kind, "message": err.message},
            }
        else:
            body = {
                "error": {
                    "message": err.message,
                    "type": err.kind,
                    "param": err.param,
                    "code": None,
                }
            }
        self._send(err.status, body, headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(body).encode(), headers)

    def _send_bytes(
        self, status: int, payload: bytes, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client gave up (e.g. its timeout fired first)
            self.close_connection = True


def _validate_openai(body: Any) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise _ApiError(400, "invalid_request_error", "We could not parse the JSON body.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _ApiError(400, "invalid_request_error", "you must provide a model parameter", "model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _ApiError(
            400, "invalid_request_error", "'messages' must be a non-empty array", "messages"
        )
    prompt = _check_messages(messages, OPENAI_ROLES, "messages")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
    ):
        raise _ApiError(
            400, "invalid_request_error", "max_tokens must be a positive integer", "max_tokens"
        )
    return model, prompt


def _validate_anthropic(body: Any) -> tuple[str, str, int]:
    if not isinstance(body, dict):
        raise _ApiError(400, "invalid_request_error", "request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _ApiError(400, "invalid_request_error", "model: Field required")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _ApiError(400, "invalid_request_error", "max_tokens: Field required (integer >= 1)")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _ApiError(400, "invalid_request_error", "messages: at least one message is required")
    if not isinstance(messages[0], dict) or messages[0].get("role") != "user":
        raise _ApiError(
            400, "invalid_request_error", "messages: first message must use the user role"
        )
    return model, _check_messages(messages, ANTHROPIC_ROLES, "messages"), max_tokens


def _check_messages(messages: list[Any], roles: frozenset[str], param: str) -> str:
    """Validate each message; the text of the last user message."""
    prompt = ""
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in roles:
            raise _ApiError(
                400,
                "invalid_request_error",
                f"{param}.{i}.role: must be one of {', '.join(sorted(roles))}",
                param,
            )
        content = message.get("content")
        if isinstance(content, list):
            blocks = [b for b in content if isinstance(b, dict) and b.get("type") == "text"]
            texts = [b["text"] for b in blocks if isinstance(b.get("text"), str)]
            if not blocks or len(texts) != len(blocks):
                raise _ApiError(
                    400, "invalid_request_error", f"{param}.{i}.content: no text block", param
                )
            content = "".join(texts)
        if not isinstance(content, str):
            raise _ApiError(
                400, "invalid_request_error", f"{param}.{i}.content: must be a string", param
            )
        if message["role"] == "user":
            prompt = content
    return prompt


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


def _openai_answer(model: str, text: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 1,
            "completion_tokens": _tokens(text),
            "total_tokens": 1 + _tokens(text),
        },
    }


def _anthropic_answer(model: str, text: str) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": _tokens(text)},
    }


@contextlib.contextmanager
def running(**kwargs: Any) -> Iterator[LLMServer]:
    """An :class:`LLMServer` for the duration of the block."""
    server = LLMServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; an empty key means that API needs no authentication."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--openai-key", default="", help="required Bearer key ('' = none)")
    parser.add_argument("--anthropic-key", default="", help="required x-api-key ('' = none)")
    args = parser.parse_args(argv)
    server = LLMServer(
        openai_key=args.openai_key or None,
        anthropic_key=args.anthropic_key or None,
        port=args.port,
    ).start()
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    print(f"llm test server on {server.url}", flush=True)
    done.wait()
    server.stop()


if __name__ == "__main__":
    main()
