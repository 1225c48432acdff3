"""Serve a function locally as functions-framework does, with gunicorn's request limits on.

``python -m shared.chaos.serve --target chaos_proxy --source functions/chaos_proxy/main.py
--host 127.0.0.1 --port 8082`` is ``functions-framework`` with the same app and the same gunicorn
application class, plus the limits below. functions-framework's own CLI cannot set them: its
gunicorn application fixes ``limit_request_line=0`` (no limit) and, being a
``BaseApplication``, ignores ``GUNICORN_CMD_ARGS`` and config files. A 10 MB request line then
cost 11-21 s of worker CPU before gunicorn's 400. Its constructor does take gunicorn options,
which is what this module passes.

gunicorn has no read timeout either: its threaded worker defers a connection that sends nothing
for 5 s, but one that sends part of its headers and stalls kept its request thread until it
closed (64 such clients stopped the function). :class:`ReadTimeoutWorker` is that worker with a
socket timeout on every blocking read and write of a request thread (``SERVE_READ_TIMEOUT_S``,
default 10 s): a client silent that long loses its connection and the thread is free again.
This module is the one place that relies on functions-framework's and gunicorn's internals (the
gunicorn application class, the worker's ``enqueue_req`` and its connection's ``sock``);
``tests/chaos/test_hardening_http.py`` pins them.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gunicorn.workers.gthread import ThreadWorker  # type: ignore[import-untyped]

from shared.settings import Env, once

LIMITS: Final[Mapping[str, int]] = {
    # gunicorn's own defaults, which functions-framework turns off for the request line.
    "limit_request_line": 8190,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
}
"""Bytes of the request line, number of header fields, bytes of one header field."""
WORKER_CLASS: Final = "shared.chaos.serve.ReadTimeoutWorker"


@once
def read_timeout_s() -> float:
    """``SERVE_READ_TIMEOUT_S``: longest wait for a client's next bytes (or room to write)."""
    env = Env()
    value = env.number("SERVE_READ_TIMEOUT_S", 10.0, low=0.1, high=3600.0)
    env.check()
    return value


class _ReadTimeoutSocket(socket.socket):
    """A client socket whose blocking mode is "blocking, for at most the read timeout"."""

    __slots__ = ()

    def setblocking(self, flag: bool) -> None:
        # gunicorn switches a connection to blocking mode right before reading a request in a
        # request thread (and back to non-blocking for its poller): that is where the bound goes.
        if flag:
            self.settimeout(read_timeout_s())
        else:
            super().setblocking(False)


class ReadTimeoutWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker whose request threads never wait on a silent client forever.

    A timed-out read raises ``TimeoutError`` in the thread, which gunicorn logs and answers by
    closing the connection.
    """

    def enqueue_req(self, conn: Any) -> None:
        if type(conn.sock) is socket.socket:
            conn.sock.__class__ = _ReadTimeoutSocket  # same layout: no new state, one override
        super().enqueue_req(conn)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the functions-framework style arguments and serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m shared.chaos.serve", description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)

    import functions_framework
    from functions_framework._http.gunicorn import GunicornApplication

    app = functions_framework.create_app(target=args.target, source=args.source)  # type: ignore[no-untyped-call]
    # THREADS, WORKERS and CLOUD_RUN_TIMEOUT_SECONDS are read by the class, as under the CLI.
    read_timeout_s()  # a bad SERVE_READ_TIMEOUT_S fails here, at start
    options = {**LIMITS, "worker_class": WORKER_CLASS}
    server = GunicornApplication(app, args.host, args.port, False, **options)  # type: ignore[no-untyped-call]
    server.run()


if __name__ == "__main__":
    main()
