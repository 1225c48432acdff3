"""The real local peers start, answer and reset; the one launcher starts and stops by group."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts import procs
from tests import services


def test_redis_answers(redis_client: Any) -> None:
    assert redis_client.ping() is True
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"


def test_firestore_emulator_round_trip(firestore_client: Any, unique: str) -> None:
    ref = firestore_client.collection("smoke").document(unique)
    ref.set({"n": 1})
    assert ref.get().to_dict() == {"n": 1}


def test_stop_ends_the_whole_process_group(tmp_path: Path) -> None:
    """A server started behind a shell (as gunicorn forks workers) is stopped with its leader."""
    port = services.free_port()
    pid_file = tmp_path / "server.pid"
    script = f"{sys.executable} -m http.server {port} --bind 127.0.0.1 & echo $! > {pid_file}; wait"
    server = services.start_process("grandchild", ["sh", "-c", script], port)
    grandchild = int(pid_file.read_text())
    assert os.getpgid(grandchild) == server.pid  # its own group, led by the started process
    server.stop()
    assert not running(grandchild)
    assert not accepting(port)


def accepting(port: int) -> bool:
    """Something answers connections on ``port``. Not a bind test: the free port is an ephemeral
    one, which any process's outgoing connection may hold as its local port (seen in CI)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie may wait a while to be reaped here)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] not in "ZX"


def test_a_process_that_never_listens_is_stopped_and_explained() -> None:
    port = services.free_port()
    argv = [sys.executable, "-c", "print('no port for you'); raise SystemExit(3)"]
    with pytest.raises(procs.ProcessError, match="exited with 3") as failed:
        services.start_process("quitter", argv, port, timeout=10)
    assert "no port for you" in str(failed.value)


def test_each_start_logs_to_its_own_file() -> None:
    first = services.start_process("twin", procs.redis_argv(a := services.free_port()), a)
    second = services.start_process("twin", procs.redis_argv(b := services.free_port()), b)
    try:
        assert first.log != second.log
        assert f"port={a}" in first.log.read_text()
        assert f"port={b}" in second.log.read_text()
    finally:
        first.stop()
        second.stop()


def test_the_emulator_jar_is_found_where_gcloud_says_the_sdk_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        pytest.fail("google-cloud-cli is not installed: run `make setup`")
    monkeypatch.delenv("FIRESTORE_EMULATOR_JAR", raising=False)
    root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip()  # fmt: skip
    jar = procs.firestore_emulator_jar()
    assert jar == Path(root) / "platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"
    override = tmp_path / "emulator.jar"
    monkeypatch.setenv("FIRESTORE_EMULATOR_JAR", str(override))
    assert procs.firestore_emulator_jar() == override
