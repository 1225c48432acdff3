"""The local stack's processes: :mod:`shared.procs`'s launcher, the emulators' command lines
(google-cloud-cli's Firestore emulator, a throwaway redis-server) and the fixed-port check.

The launcher's names (:class:`~shared.procs.Child`, :func:`~shared.procs.spawn`, ...) are imported
here too, so the stack, the benchmarks and the tests reach every process helper through one module.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from shared.procs import (
    HOST,
    Child,
    ProcessError,
    ProcessGroup,
    free_port,
    launch,
    port_in_use,
    spawn,
)
from shared.settings import Env

__all__ = [
    "FIRESTORE_CLASS",
    "HOST",
    "Child",
    "PortInUseError",
    "ProcessError",
    "ProcessGroup",
    "check_ports_free",
    "firestore_emulator_argv",
    "firestore_emulator_jar",
    "free_port",
    "launch",
    "port_in_use",
    "redis_argv",
    "spawn",
]

FIRESTORE_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


class PortInUseError(ProcessError):
    """A fixed port the stack needs is already taken by another process."""

    def __init__(self, port: int, what: str) -> None:
        super().__init__(
            f"port {port} ({what}) is already in use on {HOST}: stop whatever listens there "
            f"(`ss -ltnp 'sport = :{port}'` shows it), or run with another port "
            f"(see `python -m scripts.run_local --help`)"
        )
        self.port = port
        self.what = what


def check_ports_free(ports: Mapping[int, str]) -> None:
    """Raise :class:`PortInUseError` for the first port (of ``{port: what}``) already taken."""
    for port, what in ports.items():
        if port_in_use(port):
            raise PortInUseError(port, what)


def firestore_emulator_jar() -> Path:
    """google-cloud-cli's Firestore emulator jar (``FIRESTORE_EMULATOR_JAR`` overrides).

    The SDK root is what ``gcloud info`` says it is (a Debian package, a tarball under the home
    directory, a snap), then the Debian package's paths should gcloud itself not run.
    """
    explicit = Env().text("FIRESTORE_EMULATOR_JAR")
    if explicit:
        return Path(explicit)
    for root in _sdk_roots():
        jar = root / "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
        if jar.is_file():
            return jar
    raise ProcessError(
        "cloud-firestore-emulator.jar not found: install google-cloud-cli with the "
        "cloud-firestore-emulator component (make setup), or set FIRESTORE_EMULATOR_JAR"
    )


@functools.cache
def _sdk_roots() -> tuple[Path, ...]:
    """Where google-cloud-cli may be installed, most authoritative first (asked once)."""
    roots: list[Path] = []
    gcloud = shutil.which("gcloud")
    if gcloud:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            done = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            )
            if done.stdout.strip():
                roots.append(Path(done.stdout.strip()))
    roots += [Path("/usr/lib/google-cloud-sdk"), Path("/usr/share/google-cloud-sdk")]
    return tuple(dict.fromkeys(roots))


def firestore_emulator_argv(port: int) -> list[str]:
    """The command that runs the Firestore emulator on 127.0.0.1:``port`` (in memory)."""
    java = shutil.which("java")
    if java is None:
        raise ProcessError("java is not installed: `make setup` installs it")
    return [
        java,
        "-cp",
        str(firestore_emulator_jar()),
        FIRESTORE_CLASS,
        "start",
        f"--host={HOST}",
        f"--port={port}",
    ]


def redis_argv(port: int) -> list[str]:
    """A throwaway redis-server on 127.0.0.1:``port``: no persistence."""
    redis = shutil.which("redis-server")
    if redis is None:
        raise ProcessError("redis-server is not installed: `make setup` installs it")
    return [redis, "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
