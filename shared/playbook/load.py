"""A bounded, open-loop HTTP load generator (the seed's artillery/k6 step, in-process).

Requests are scheduled at ``rate_rps`` for ``duration_s`` seconds and sent by at most
``concurrency`` worker threads; no more than ``max_requests`` are ever sent. Each latency is
measured from the request's *scheduled* start, so a saturated target shows up as latency instead
of silently lowering the rate (no coordinated omission). Injected failures are counted from the
``X-Chaos-Injected: true`` response header.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from shared.obs.percentiles import summarize
from shared.obs.requests import INJECTED_HEADER
from shared.playbook.model import LoadProvider


@dataclass(frozen=True, slots=True)
class LoadReport:
    """What a load run did. Latencies in milliseconds, ``duration_s`` and rates per second."""

    planned: int
    sent: int
    completed: int
    connection_errors: int
    status_counts: dict[str, int]
    injected: int
    ok_rate: float | None
    latency_ms: dict[str, float] | None
    achieved_rps: float
    duration_s: float

    def as_output(self) -> dict[str, Any]:
        """The report as a JSON-friendly dict (a probe's output)."""
        return {
            "planned": self.planned,
            "sent": self.sent,
            "completed": self.completed,
            "connection_errors": self.connection_errors,
            "status_counts": dict(self.status_counts),
            "injected": self.injected,
            "ok_rate": self.ok_rate,
            "latency_ms": self.latency_ms,
            "achieved_rps": self.achieved_rps,
            "duration_s": self.duration_s,
        }


def run_load(
    spec: LoadProvider,
    *,
    stop: threading.Event | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> LoadReport:
    """Send the load ``spec`` describes; ``stop`` ends scheduling early (e.g. on SIGINT)."""
    import requests

    planned = min(spec.max_requests, max(1, math.floor(spec.rate_rps * spec.duration_s)))
    stop = stop or threading.Event()
    local = threading.local()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    counters = {"errors": 0, "injected": 0, "sent": 0}
    sessions: list[requests.Session] = []

    def session() -> requests.Session:
        current: requests.Session | None = getattr(local, "session", None)
        if current is None:
            current = requests.Session()
            current.trust_env = False
            local.session = current
            with lock:
                sessions.append(current)
        return current

    def one(scheduled: float) -> None:
        if stop.is_set():
            return  # queued before the stop: never sent
        with lock:
            counters["sent"] += 1
        status: str | None = None
        injected = False
        try:
            response = session().request(
                spec.method,
                spec.url,
                params=dict(spec.query),
                headers=dict(spec.headers),
                json=spec.json,
                timeout=spec.timeout_s,
            )
            response.content  # noqa: B018  (read the body: the latency includes it)
            status = str(response.status_code)
            injected = response.headers.get(INJECTED_HEADER, "").lower() == "true"
        except requests.RequestException:
            pass
        elapsed_ms = (monotonic() - scheduled) * 1000.0
        with lock:
            if status is None:
                counters["errors"] += 1
            else:
                statuses[status] += 1
                latencies.append(elapsed_ms)
                counters["injected"] += int(injected)

    started = monotonic()
    interval = 1.0 / spec.rate_rps
    with ThreadPoolExecutor(max_workers=spec.concurrency, thread_name_prefix="load") as pool:
        for index in range(planned):
            scheduled = started + index * interval
            wait = scheduled - monotonic()
            if wait > 0 and stop.wait(wait):
                break
            if stop.is_set():
                break
            pool.submit(one, scheduled)
        if stop.is_set():
            pool.shutdown(wait=True, cancel_futures=True)
    elapsed = max(monotonic() - started, 1e-9)
    for s in sessions:
        s.close()
    completed = sum(statuses.values())
    good = sum(n for code, n in statuses.items() if int(code) < 500)
    sent = counters["sent"]
    return LoadReport(
        planned=planned,
        sent=sent,
        completed=completed,
        connection_errors=counters["errors"],
        status_counts=dict(sorted(statuses.items())),
        injected=counters["injected"],
        ok_rate=good / sent if sent else None,
        latency_ms=summarize(latencies).as_dict() if latencies else None,
        achieved_rps=sent / elapsed,
        duration_s=elapsed,
    )
