"""Serve a function locally as functions-framework does, with gunicorn's request limits on.

``python -m shared.chaos.serve --target chaos_proxy --source functions/chaos_proxy/main.py
--host 127.0.0.1 --port 8082`` is ``functions-framework`` with the same app and the same gunicorn
application class, plus the limits below. functions-framework's own CLI cannot set them: its
gunicorn application fixes ``limit_request_line=0`` (no limit) and, being a
``BaseApplication``, ignores ``GUNICORN_CMD_ARGS`` and config files. A 10 MB request line then
cost 11-21 s of worker CPU before gunicorn's 400. Its constructor does take gunicorn options,
which is what this module passes.

What gunicorn cannot bound: a client that sends part of its headers and stalls keeps its thread
until it closes (gunicorn's threaded worker only defers connections that send nothing for 5 s).
Deployed, Google's front end terminates client connections and forwards whole requests; locally,
``CHAOS_MAX_HELD_DROPS`` keeps drops from taking every thread, and nothing else stalls here.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Final

LIMITS: Final[Mapping[str, int]] = {
    # gunicorn's own defaults, which functions-framework turns off for the request line.
    "limit_request_line": 8190,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
}
"""Bytes of the request line, number of header fields, bytes of one header field."""


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
    server = GunicornApplication(app, args.host, args.port, False, **LIMITS)  # type: ignore[no-untyped-call]
    server.run()


if __name__ == "__main__":
    main()
