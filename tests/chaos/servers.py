"""Real local peers for chaos tests: an echo upstream, functions-framework, the Auth emulator."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests import services

REPO = Path(__file__).resolve().parents[2]


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every method with what it received; a few paths shape the answer."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the client's
    # delayed ACK adds ~40 ms to every keep-alive response after the first few.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(code, b'{"status": %d}' % code, [("Content-Type", "application/json")])
            return
        if path.startswith("/sleep/"):
            time.sleep(int(path.rsplit("/", 1)[1]) / 1000.0)
        if path == "/gzip":
            payload = gzip.compress(b"compressed " * 50)
            self._send(200, payload, [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")])
            return
        if path == "/nocontenttype":
            self._send(204, b"", [])
            return
        echoed = {
            "method": self.command,
            "path": path,
            "query": query,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body_b64": base64.b64encode(body).decode(),
        }
        extra = [
            ("Content-Type", "application/json"),
            ("Set-Cookie", "a=1; Path=/"),
            ("Set-Cookie", "b=2; Path=/"),
            ("X-Upstream", "echo"),
            ("Keep-Alive", "timeout=5"),
            ("X-Hop", "secret"),
            ("Connection", "X-Hop"),
        ]
        if path.startswith("/chunked"):
            self._send_chunked(json.dumps(echoed).encode(), extra)
            return
        self._send(200, json.dumps(echoed).encode(), extra)

    def _send(self, code: int, payload: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(code)
        for name, value in headers:
            self.send_header(name, value)
        if code != 204:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and code != 204:
            self.wfile.write(payload)

    def _send_chunked(self, payload: bytes, headers: list[tuple[str, str]]) -> None:
        self.send_response(200)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(payload), 7):
            part = payload[i : i + 7]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out on purpose leave broken pipes behind


@dataclass
class EchoUpstream:
    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_echo_upstream() -> EchoUpstream:
    server = _QuietServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return EchoUpstream(server, thread)


def start_function(
    name: str, env: Mapping[str, str], *, debug: bool = False, limits: bool = True
) -> services.Service:
    """Serve ``functions/<name>/main.py``: by ``shared.chaos.serve`` (functions-framework's gunicorn
    with request limits), by the plain functions-framework CLI (``limits=False``), or by its
    werkzeug debug server (``debug``)."""
    port = services.free_port()
    if limits and not debug:
        argv = [sys.executable, "-m", "shared.chaos.serve"]
    else:
        argv = [str(Path(sys.executable).with_name("functions-framework"))]
    argv += ["--source", f"functions/{name}/main.py", "--target", name]
    argv += ["--host", "127.0.0.1", "--port", str(port)] + (["--debug"] if debug else [])
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CHAOS_")}
    full_env.pop("K_SERVICE", None)
    full_env.update({"PYTHONPATH": str(REPO), "THREADS": "8", **env})
    return services.start_process(name, argv, port, env=full_env, cwd=str(REPO), timeout=60)


# -- Firebase Auth emulator -----------------------------------------------------------------------

AUTH_PROJECT = "demo-chaos-auth"


@dataclass
class AuthEmulator:
    service: services.Service
    workdir: Path

    @property
    def host(self) -> str:
        return self.service.host

    def _call(self, path: str, body: Mapping[str, object], *, admin: bool = False) -> Any:
        headers = {"Content-Type": "application/json"}
        if admin:  # the emulator accepts "owner" as an admin credential
            headers["Authorization"] = "Bearer owner"
        req = urllib.request.Request(
            f"http://{self.host}/identitytoolkit.googleapis.com/v1/{path}",
            data=json.dumps(body).encode(),
            headers=headers,
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def id_token(self, email: str, role: str | None) -> str:
        """Create a user (custom claim ``role`` when given) and sign in; returns the ID token."""
        password = "chaos-test-password"
        user = self._call(
            "accounts:signUp?key=fake-api-key",
            {"email": email, "password": password, "returnSecureToken": True},
        )
        if role is not None:
            self._call(
                f"projects/{AUTH_PROJECT}/accounts:update",
                {"localId": user["localId"], "customAttributes": json.dumps({"role": role})},
                admin=True,
            )
        signed_in = self._call(
            "accounts:signInWithPassword?key=fake-api-key",
            {"email": email, "password": password, "returnSecureToken": True},
        )
        return str(signed_in["idToken"])


def firebase_cli() -> Path:
    cli = REPO / "node_modules" / ".bin" / "firebase"
    if not cli.exists():
        raise RuntimeError(
            "firebase-tools is not installed: run `make setup` (scripts/node-deps.sh)"
        )
    return cli


def _wait_until_auth_ready(service: services.Service, timeout: float = 60.0) -> None:
    """Until the emulator answers its status page with ``ready``.

    Its port opens before it serves: a request sent right then was seen reset (in CI). The
    status page also proves the port is the emulator's, not another process's that took it.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{service.host}/", timeout=5) as resp:
                status = json.loads(resp.read())
            if status.get("authEmulator", {}).get("ready") is True:
                return
            last = status
        except (OSError, ValueError) as exc:  # reset, refused, timeout, not JSON yet
            last = exc
        time.sleep(0.2)
    raise RuntimeError(
        f"the Auth emulator on {service.host} was not ready within {timeout:g} s: {last!r}\n"
        f"{service.log.read_text()[-2000:]}"
    )


@contextlib.contextmanager
def running_auth_emulator() -> Iterator[AuthEmulator]:
    """The Firebase Auth emulator on free loopback ports, in its own process group."""
    workdir = Path(tempfile.mkdtemp(prefix="chaos-auth-emulator-"))
    port, hub, logging_port = services.free_port(), services.free_port(), services.free_port()
    config = {
        "emulators": {
            "auth": {"host": "127.0.0.1", "port": port},
            "hub": {"host": "127.0.0.1", "port": hub},
            "logging": {"host": "127.0.0.1", "port": logging_port},
            "ui": {"enabled": False},
        }
    }
    (workdir / "firebase.json").write_text(json.dumps(config))
    env = dict(os.environ)
    env.update({"NO_UPDATE_NOTIFIER": "1", "CI": "true", "HOME": str(workdir)})
    argv = [str(firebase_cli()), "emulators:start", "--only", "auth", "--project", AUTH_PROJECT]
    service = services.start_process(
        "firebase-auth", argv, port, env=env, cwd=str(workdir), timeout=120
    )
    try:
        _wait_until_auth_ready(service)
        yield AuthEmulator(service, workdir)
    finally:
        service.stop()
        shutil.rmtree(workdir, ignore_errors=True)
