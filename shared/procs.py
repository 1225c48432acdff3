"""Child processes started alone and stopped by their group: the one launcher of the project.

Every child runs in its own process group (``start_new_session``) with its output in a log file
(or, without a log folder, on this process's own output), is considered ready once it accepts TCP
connections on its port (or answers HTTP), and is stopped by signalling its group, never by name.
The local stack, the tests and the Chaos Toolkit extension (cold starts, loads) all start
processes here; :mod:`scripts.procs` adds the emulators' command lines.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "HOST",
    "Child",
    "ProcessError",
    "ProcessGroup",
    "free_port",
    "launch",
    "port_in_use",
    "spawn",
]

HOST = "127.0.0.1"


class ProcessError(RuntimeError):
    """A child process could not be started or did not become ready."""


def free_port() -> int:
    """An unused TCP port on the loopback interface (racy by nature: bind it soon)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    """True when something on this machine already listens on ``port`` (loopback or any).

    SO_REUSEADDR, as servers set it, so connections of a previous run left in TIME_WAIT do not
    count as a busy port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


@dataclass
class Child:
    """One running child process and where its output goes (``log`` None: our own output)."""

    name: str
    argv: list[str]
    port: int | None
    proc: subprocess.Popen[bytes]
    log: Path | None
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, as clients and emulator variables want it."""
        if self.port is None:
            raise ProcessError(f"{self.name} has no port")
        return f"{HOST}:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, chars: int = 2000) -> str:
        """The end of the child's log, for error messages ("" without a log)."""
        if self.log is None:
            return ""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def _log_end(self) -> str:
        """The log's name and end, to close an error message with."""
        return "" if self.log is None else f"\n--- {self.log} ---\n{self.tail()}"

    def wait_for_port(self, timeout: float, poll_s: float = 0.05) -> None:
        """Block until the child accepts TCP connections on its port, trying every ``poll_s``."""
        if self.port is None:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessError(
                    f"{self.name} exited with {self.proc.returncode} before listening on "
                    f"{HOST}:{self.port}{self._log_end()}"
                )
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), 0.2):
                return
            time.sleep(poll_s)
        raise ProcessError(
            f"{self.name} did not listen on {HOST}:{self.port} within {timeout:.0f} s"
            f"{self._log_end()}"
        )

    def wait_for_http(self, path: str = "/", timeout: float = 30.0) -> int:
        """Block until an HTTP GET of ``path`` gets any response; return its status."""
        if self.port is None:
            raise ProcessError(f"{self.name} has no port to poll")
        deadline = time.monotonic() + timeout
        url = f"http://{HOST}:{self.port}{path}"
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessError(
                    f"{self.name} exited with {self.proc.returncode}{self._log_end()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)
            except (urllib.error.URLError, OSError):
                time.sleep(0.02)
        raise ProcessError(f"{self.name} did not answer {url} within {timeout:.0f} s")

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL what is left of it after ``grace`` s.

        Returns the leader's exit code once no live process of the group remains (a leader that
        exits first can leave workers behind: gunicorn's, or a shell's background job).
        """
        deadline = time.monotonic() + grace
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        while _group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _group_alive(self.proc.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)
        return self.proc.returncode


def _group_alive(pgid: int) -> bool:
    """True while a live (not zombie) process belongs to process group ``pgid``.

    Zombies are skipped: an orphan's zombie waits for whoever reaps orphans here, which is not
    always prompt (or ever, in some containers), and it holds no port or file.
    """
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: any member, zombie or not
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def launch(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    log_dir: Path | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    timeout: float = 30.0,
    poll_s: float = 0.05,
) -> Child:
    """Start ``argv`` alone (own process group) and wait until it listens on ``port``.

    If it does not, it is stopped and :class:`ProcessError` carries the end of its log.
    """
    child = spawn(name, argv, port=port, log_dir=log_dir, env=env, cwd=cwd)
    try:
        child.wait_for_port(timeout, poll_s)
    except BaseException:
        child.stop()
        raise
    return child


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    port: int | None,
    log_dir: Path | None,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> Child:
    """Start ``argv`` in a new process group, output to ``log_dir/<name>.log`` (with no
    ``log_dir``, to this process's own stdout and stderr); do not wait."""
    log = None if log_dir is None else log_dir / f"{name}.log"
    with contextlib.ExitStack() as stack:
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = stack.enter_context(log.open("wb"))
        try:
            proc = subprocess.Popen(
                list(argv),
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=str(cwd) if cwd is not None else None,
            )
        except OSError as exc:
            raise ProcessError(f"cannot start {name} ({argv[0]}): {exc}") from exc
    return Child(name, list(argv), port, proc, log)


class ProcessGroup:
    """Children started together and stopped together, in reverse start order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int | None,
        env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        timeout: float = 30.0,
    ) -> Child:
        """Start a child and wait until it listens on ``port`` (if any)."""
        child = spawn(name, argv, port=port, log_dir=self.log_dir, env=env, cwd=cwd)
        self.children.append(child)
        child.wait_for_port(timeout)
        return child

    def exited(self) -> list[Child]:
        """Children that have stopped on their own."""
        return [c for c in self.children if not c.alive()]

    def stop_all(self, grace: float = 5.0) -> None:
        """Stop every child: SIGTERM all groups first, then wait for each in reverse order."""
        for child in reversed(self.children):
            if child.alive():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGTERM)
        for child in reversed(self.children):
            child.stop(grace)
        self.children.clear()

    def __enter__(self) -> ProcessGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
