"""A local Slack incoming-webhook endpoint that prints each alert as readable text.

``python -m shared.slo.slack_sink --port 8089`` listens on 127.0.0.1; point
``SLACK_WEBHOOK_URL`` at ``http://127.0.0.1:8089/services/local`` (any path is accepted).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def render(payload: Any) -> str:
    """A Block Kit message as plain text: header, fields, context, links."""
    if not isinstance(payload, dict):
        return str(payload)
    lines: list[str] = []
    for block in payload.get("blocks") or []:
        kind = block.get("type")
        if kind == "header":
            lines.append(str(block.get("text", {}).get("text", "")))
        elif kind == "section":
            if block.get("text"):
                lines.append(str(block["text"].get("text", "")))
            for item in block.get("fields") or []:
                name, _, value = str(item.get("text", "")).partition("\n")
                lines.append(f"  {name.strip('*')}: {value}")
        elif kind == "context":
            lines.extend(f"  {e.get('text', '')}" for e in block.get("elements") or [])
        elif kind == "actions":
            lines.extend(
                f"  link: {e.get('url')}" for e in block.get("elements") or [] if e.get("url")
            )
    if not lines:
        lines.append(str(payload.get("text", "")))
    return "\n".join(lines)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            payload = json.loads(raw)
        except ValueError:
            self._answer(400, "invalid_payload")
            return
        print(f"---- Slack alert ----\n{render(payload)}\n", flush=True)
        self._answer(200, "ok")

    def _answer(self, status: int, text: str) -> None:
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the alerts themselves are the output


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8089)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), _Handler)
    server.daemon_threads = True

    def on_signal(signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"local Slack sink on http://127.0.0.1:{args.port}/", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    print("local Slack sink: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
