"""Cold starts measured from outside: a fresh instance of a running service, timed.

Cloud Functions starts a new instance on scale-out or after idle; locally the same happens when
:func:`cold_start` starts a second process from the running service's own command line, working
directory and environment (found by the port it listens on), on a free port. It times the start
until the port opens, an optional prewarm step, and the first ``calls`` requests, then stops the
process by its process group. Times are milliseconds except ``start_s`` (seconds).
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from shared import procs
from shared.chaos.ctk.errors import InvalidArgument, ServiceFailed
from shared.chaos.ctk.samples import percentiles
from shared.chaos.ctk.spec import LOOPBACK_HOSTS

__all__ = ["POPULAR_QUESTIONS", "cold_start", "find_service"]

#: What a prewarm asks and the timed calls ask again (the load's first questions).
POPULAR_QUESTIONS: tuple[str, ...] = (
    "Which services call the payments API? (topic 0)",
    "Who owns the search index? (topic 1)",
)


@dataclass(frozen=True, slots=True)
class ServiceProcess:
    """How a running service was started: enough to start another one like it."""

    pid: int
    argv: tuple[str, ...]
    cwd: str
    env: dict[str, str]


def find_service(port: int) -> ServiceProcess:
    """The process listening on 127.0.0.1:``port`` (its command line, directory, environment)."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
            if conn.pid is None:
                break
            proc = psutil.Process(conn.pid)
            try:
                return ServiceProcess(conn.pid, tuple(proc.cmdline()), proc.cwd(), proc.environ())
            except psutil.Error as exc:
                raise ServiceFailed(f"cannot read the process on port {port}: {exc}") from exc
    raise ServiceFailed(f"no process of this user listens on port {port}")


def with_port(argv: Sequence[str], port: int) -> list[str]:
    """``argv`` with its ``--port N`` (or ``--port=N``) replaced by ``port`` (added if absent)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--port":
            skip = True
            continue
        if arg.startswith("--port="):
            continue
        out.append(arg)
    return [*out, "--port", str(port)]


@contextlib.contextmanager
def _fresh_instance(service: ServiceProcess, port: int, timeout_s: float) -> Iterator[float]:
    """Start a copy of ``service`` on ``port``; yields seconds until it listened; stops it after."""
    env = dict(service.env)
    env["PORT"] = str(port)
    argv = with_port(service.argv, port)
    with tempfile.TemporaryDirectory(prefix="cold-start-") as logs:
        started = time.monotonic()
        try:
            # Polled every 10 ms: the start time is what this probe measures.
            child = procs.launch(
                "fresh-instance",
                argv,
                port=port,
                log_dir=Path(logs),
                env=env,
                cwd=service.cwd,
                timeout=timeout_s,
                poll_s=0.01,
            )
        except procs.ProcessError as exc:
            raise ServiceFailed(f"the fresh instance did not start: {exc}") from exc
        try:
            yield time.monotonic() - started
        finally:
            child.stop()


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int  # 0 when nothing came back
    ms: float
    served: str | None = None
    cache: str | None = None


def _ask(url: str, question: str, plan: str, timeout_s: float) -> _Answer:
    """One ``POST`` of ``question``, timed."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"question": question}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Plan": plan},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    started = time.monotonic()
    status = 0
    body: dict[str, Any] = {}
    try:
        with opener.open(request, timeout=timeout_s) as response:
            status = int(response.status)
            with contextlib.suppress(ValueError):
                loaded = json.loads(response.read())
                body = loaded if isinstance(loaded, dict) else {}
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
    except (urllib.error.URLError, OSError):
        status = 0
    ms = (time.monotonic() - started) * 1000.0
    served, cache = body.get("served"), body.get("cache")
    return _Answer(
        status,
        ms,
        served if isinstance(served, str) else None,
        cache if isinstance(cache, str) else None,
    )


def cold_start(
    url: str,
    prewarm: bool = True,
    calls: int = 10,
    questions: Sequence[str] = POPULAR_QUESTIONS,
    prewarm_path: str | None = None,
    plan: str = "premium",
    interval_s: float = 0.6,
    settle_s: float = 1.0,
    timeout_s: float = 10.0,
    start_timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Start a fresh instance of the service behind ``url`` and time its first requests.

    ``url`` is the running service's endpoint (``http://127.0.0.1:8085/graph_ask``). With
    ``prewarm``, each of ``questions`` is asked once (and ``prewarm_path`` fetched if given)
    before the timed calls, as a deploy's prewarm task would. Then ``calls`` requests ask the
    questions in turn, ``interval_s`` apart, ``settle_s`` after the prewarm: the service's
    admission must not throttle the probe (its default 120 rpm allows one call per 0.5 s).
    Reports ``start_s`` (process start until its port opened), ``prewarm_ms``, ``first_ms``,
    ``warm_p95_ms`` (calls after the first), ``first_over_warm_ms``, ``cache_hit_ratio`` (hits
    among the timed calls that looked the cache up) and ``failures`` (a status other than 200).
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or parts.port is None:
        raise InvalidArgument(f"url must be http://127.0.0.1:<port>/..., got {url!r}")
    if isinstance(calls, bool) or not isinstance(calls, int) or not 2 <= calls <= 1000:
        raise InvalidArgument(f"calls must be an integer in [2, 1000], got {calls!r}")
    for name, value in (("interval_s", interval_s), ("settle_s", settle_s)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 60:
            raise InvalidArgument(f"{name} must be a number of seconds in [0, 60], got {value!r}")
    if isinstance(questions, str) or not questions:
        raise InvalidArgument("questions must be a non-empty list of strings")
    service = find_service(parts.port)
    port = procs.free_port()
    fresh = urlunsplit((parts.scheme, f"127.0.0.1:{port}", parts.path, parts.query, ""))
    answers: list[_Answer] = []
    prewarm_ms = 0.0
    with _fresh_instance(service, port, start_timeout_s) as start_s:
        if prewarm:
            began = time.monotonic()
            if prewarm_path:
                opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                target = urlunsplit(("http", f"127.0.0.1:{port}", prewarm_path, "", ""))
                with contextlib.suppress(urllib.error.URLError, OSError):
                    opener.open(target, timeout=timeout_s).read()
            for text in questions:
                _ask(fresh, text, plan, timeout_s)
            prewarm_ms = (time.monotonic() - began) * 1000.0
            time.sleep(settle_s)
        for index in range(calls):
            if index:
                time.sleep(interval_s)
            answers.append(_ask(fresh, questions[index % len(questions)], plan, timeout_s))
    latencies = [a.ms for a in answers]
    served = [a.served for a in answers]
    lookups = [a.cache for a in answers if a.cache in ("hit", "miss", "stale")]
    warm = percentiles(latencies[1:])
    warm_p95 = warm["p95"] if warm else latencies[0]
    return {
        "prewarm": prewarm,
        "service_pid": service.pid,
        "start_s": round(start_s, 3),
        "prewarm_ms": round(prewarm_ms, 3),
        "first_ms": round(latencies[0], 3),
        "warm_p95_ms": warm_p95,
        "first_over_warm_ms": round(latencies[0] - warm_p95, 3),
        "calls": calls,
        "failures": sum(1 for a in answers if a.status != 200),
        "first_served": served[0],
        "first_cache": answers[0].cache,
        # Hits (fresh or stale) among the calls that looked the cache up; None if none did.
        "cache_hit_ratio": (
            sum(1 for c in lookups if c != "miss") / len(lookups) if lookups else None
        ),
        "served": {k or "none": served.count(k) for k in dict.fromkeys(served)},
    }
