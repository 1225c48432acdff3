"""Load probes: an open-model load of ``POST /graph_ask`` sent by Locust, judged from outside.

``run_load`` sends a load and returns its report (see :func:`shared.chaos.ctk.samples.summarize`
for every field). ``start_load`` starts one in the background under a name and returns at once
(a method's surge); a later ``run_load(join=<name>)`` waits for that load and returns *its*
report instead of sending another, so the steady-state hypothesis after the method judges the
surge. ``stop_load`` ends a named load (a rollback). Locust runs in a child process of its own
(it monkey-patches the standard library with gevent), whose progress lines reach the terminal.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import procs
from shared.chaos.ctk.errors import InvalidArgument, LoadFailed
from shared.chaos.ctk.spec import LoadSpec, load_spec

__all__ = ["run_load", "start_load", "stop_load"]

REPO = Path(__file__).resolve().parents[3]
#: Start-up allowance of the load process on top of the load's own duration (seconds).
_STARTUP_S = 30.0


@dataclass(slots=True)
class _Running:
    spec: LoadSpec
    child: procs.Child
    folder: Path

    @property
    def report_path(self) -> Path:
        return self.folder / "report.json"


_lock = threading.Lock()
_running: dict[str, _Running] = {}


def _spec(
    url: str,
    rate_rpm: float,
    duration_s: float,
    load_factor: float,
    label: str,
    options: dict[str, Any],
) -> LoadSpec:
    if isinstance(rate_rpm, bool) or not isinstance(rate_rpm, int | float) or rate_rpm <= 0:
        raise InvalidArgument(
            f"rate_rpm must be a number of requests per minute > 0, got {rate_rpm!r}"
        )
    if (
        isinstance(load_factor, bool)
        or not isinstance(load_factor, int | float)
        or load_factor <= 0
    ):
        raise InvalidArgument(f"load_factor must be a number > 0, got {load_factor!r}")
    return load_spec(
        url=url,
        rate_rps=rate_rpm * load_factor / 60.0,
        duration_s=duration_s,
        label=label,
        base_rpm=float(rate_rpm),
        **options,
    )


def _start(spec: LoadSpec) -> _Running:
    folder = Path(tempfile.mkdtemp(prefix=f"ctk-load-{spec.label}-"))
    (folder / "spec.json").write_text(json.dumps(spec.as_dict()), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    argv = [
        sys.executable,
        "-m",
        "shared.chaos.ctk.locust_load",
        str(folder / "spec.json"),
        str(folder / "report.json"),
    ]
    # No log folder: its progress lines reach the terminal of whoever runs the experiment.
    child = procs.spawn(f"load-{spec.label}", argv, port=None, log_dir=None, env=env, cwd=REPO)
    return _Running(spec, child, folder)


def _stop(running: _Running) -> None:
    running.child.stop(grace=5.0)


def _collect(running: _Running) -> dict[str, Any]:
    """Wait (bounded) for the load process and return its report."""
    limit = running.spec.duration_s + running.spec.timeout_s + _STARTUP_S
    try:
        code = running.child.proc.wait(limit)
    except subprocess.TimeoutExpired:
        _stop(running)
        raise LoadFailed(
            f"load {running.spec.label!r} did not finish within {limit:.0f} s"
        ) from None
    finally:
        _stop(running)
    try:
        report: dict[str, Any] = json.loads(running.report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LoadFailed(f"load {running.spec.label!r} exited with {code} and no report") from exc
    report["label"] = running.spec.label
    report["url"] = running.spec.url
    report["rate_rps"] = running.spec.rate_rps
    report["premium_share"] = running.spec.premium_share
    return report


def run_load(
    url: str,
    rate_rpm: float,
    duration_s: float,
    load_factor: float = 1.0,
    label: str = "load",
    join: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Send ``rate_rpm * load_factor`` requests per minute to ``url`` for ``duration_s`` s.

    Options: ``premium_share``, ``questions``, ``timeout_s``, ``max_requests``,
    ``max_in_flight``, ``target_s`` (the "within target" ratio per plan), ``progress_s``.
    With ``join=<name>`` and a load of that name started by :func:`start_load`, waits for that
    load and returns its report instead (the arguments here are checked all the same).
    """
    spec = _spec(url, rate_rpm, duration_s, load_factor, label, options)
    if join is not None:
        with _lock:
            running = _running.pop(join, None)
        if running is not None:
            return _collect(running)
    return _collect(_start(spec))


def start_load(
    name: str,
    url: str,
    rate_rpm: float,
    duration_s: float,
    load_factor: float = 1.0,
    **options: Any,
) -> dict[str, Any]:
    """Start a load named ``name`` in the background and return at once (an action)."""
    spec = _spec(url, rate_rpm, duration_s, load_factor, name, options)
    with _lock:
        if name in _running and _running[name].child.alive():
            raise InvalidArgument(f"a load named {name!r} is already running")
        running = _running[name] = _start(spec)
    return {
        "name": name,
        "pid": running.child.pid,
        "rate_rps": spec.rate_rps,
        "planned": spec.planned,
    }


def stop_load(name: str) -> dict[str, Any]:
    """Stop the load named ``name`` if it still runs; idempotent (a rollback)."""
    with _lock:
        running = _running.pop(name, None)
    if running is None:
        return {"name": name, "stopped": False}
    was_running = running.child.alive()
    _stop(running)
    return {"name": name, "stopped": was_running}


@atexit.register
def _stop_all() -> None:
    """No load outlives ``chaos run``."""
    with _lock:
        leftovers = list(_running.values())
        _running.clear()
    for running in leftovers:
        _stop(running)
