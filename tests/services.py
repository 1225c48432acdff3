"""Start and stop the real local peers the tests use (Redis, Firestore emulator).

Every server binds to 127.0.0.1 on a free port, runs in its own process group and is stopped by
that group, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

FIRESTORE_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(
    port: int,
    timeout: float = 30.0,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} opened")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@dataclass
class Service:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_group(self.proc)


def start_process(
    name: str,
    argv: Sequence[str],
    port: int,
    *,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> Service:
    """Start ``argv`` in a new process group and wait until it listens on ``port``."""
    log = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            cwd=cwd,
        )
    try:
        wait_for_port(port, timeout, proc)
    except Exception as exc:
        stop_group(proc)
        raise RuntimeError(f"{name} did not start: {exc}\n{log.read_text()[-2000:]}") from exc
    return Service(name, port, proc, log)


def stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


def start_redis() -> Service:
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server is not installed: run `make setup`")
    port = free_port()
    return start_process(
        "redis",
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        port,
    )


def firestore_emulator_jar() -> Path:
    """The emulator jar shipped with google-cloud-cli (``FIRESTORE_EMULATOR_JAR`` overrides)."""
    explicit = os.environ.get("FIRESTORE_EMULATOR_JAR")
    if explicit:
        return Path(explicit)
    roots = []
    if shutil.which("gcloud"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            roots.append(
                subprocess.run(
                    ["gcloud", "info", "--format=value(installation.sdk_root)"],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=True,
                ).stdout.strip()
            )
    roots += ["/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk"]
    for root in roots:
        jar = Path(root) / "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
        if root and jar.is_file():
            return jar
    raise RuntimeError(
        "cloud-firestore-emulator.jar not found: install google-cloud-cli "
        "with the cloud-firestore-emulator component (make setup)"
    )


def start_firestore() -> Service:
    port = free_port()
    argv = [
        "java",
        "-cp",
        str(firestore_emulator_jar()),
        FIRESTORE_CLASS,
        "start",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    return start_process("firestore", argv, port, timeout=60)


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
