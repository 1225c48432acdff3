"""The real local peers the tests use (Redis, the Firestore emulator, function servers).

One process launcher for the tests and the local stack: :mod:`scripts.procs`. Every server binds
to 127.0.0.1 on a free port, runs in its own process group with its output in its own log file,
and is stopped by that group, never by name.
"""

from __future__ import annotations

import contextlib
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from scripts import procs

__all__ = [
    "Service",
    "free_port",
    "reset_firestore",
    "running",
    "start_firestore",
    "start_process",
    "start_redis",
]

#: A started server: ``name``, ``port``, ``host`` (``127.0.0.1:<port>``), ``proc``, ``log``,
#: ``stop()``.
Service = procs.Child
free_port = procs.free_port


def start_process(
    name: str,
    argv: Sequence[str],
    port: int,
    *,
    timeout: float = 30.0,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> Service:
    """Start ``argv`` in a new process group and wait until it listens on ``port``.

    Each start logs into a fresh directory, so two servers of one name never share a log.
    """
    log_dir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    return procs.launch(name, argv, port=port, log_dir=log_dir, env=env, cwd=cwd, timeout=timeout)


def start_redis() -> Service:
    port = free_port()
    return start_process("redis", procs.redis_argv(port), port)


def start_firestore() -> Service:
    port = free_port()
    return start_process("firestore", procs.firestore_emulator_argv(port), port, timeout=60)


def reset_firestore(host: str, project: str) -> None:
    """Delete every document of ``project`` in the emulator."""
    req = urllib.request.Request(
        f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents",
        method="DELETE",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@contextlib.contextmanager
def running(service: Service) -> Iterator[Service]:
    try:
        yield service
    finally:
        service.stop()
