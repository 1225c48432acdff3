"""The load process: Locust's ``FastHttpUser`` on an open-model timetable (run as ``-m``).

``python -m shared.chaos.ctk.locust_load SPEC.json REPORT.json`` sends the load a
:class:`~shared.chaos.ctk.spec.LoadSpec` describes and writes the report of
:func:`~shared.chaos.ctk.samples.summarize`. It runs as its own process because importing Locust
monkey-patches the standard library with gevent, which must not happen inside ``chaos run``.

Locust's users are a closed model (a user waits for its answer before it sends again), so a slow
service would lower the offered rate and hide its own latency. One dispatcher user instead spawns
a greenlet per arrival on a fixed timetable and shares its connection pool among them; each
latency is measured from the arrival's scheduled time. Progress goes to stderr every
``progress_s`` seconds: elapsed/remaining, requests sent, the recent error rate and p95.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import gevent  # type: ignore[import-untyped]
import gevent.event  # type: ignore[import-untyped]
import gevent.pool  # type: ignore[import-untyped]
from locust import FastHttpUser, task  # monkey-patches on import (gevent)
from locust.env import Environment
from locust.exception import StopUser

from shared.chaos.ctk.samples import Sample, percentiles, summarize
from shared.chaos.ctk.spec import LoadSpec

QUESTIONS = (
    "Which services call the payments API?",
    "Who owns the search index?",
    "What depends on the user profile store?",
    "Which teams use the recommendation model?",
)


def question(index: int, spec: LoadSpec) -> str:
    """The ``index``-th question: ``spec.questions`` distinct texts, cycled."""
    k = index % spec.questions
    return f"{QUESTIONS[k % len(QUESTIONS)]} (topic {k})"


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def sample_of(at_s: float, plan: str, latency_ms: float, response: Any) -> Sample:
    """A :class:`Sample` from a Locust FastResponse (status 0 when nothing came back)."""
    status = int(getattr(response, "status_code", 0) or 0)
    body: dict[str, Any] = {}
    if status == 200:
        try:
            loaded = response.json()
        except (ValueError, TypeError, AttributeError):
            loaded = None
        body = loaded if isinstance(loaded, dict) else {}
    headers = getattr(response, "headers", None) or {}
    return Sample(
        at_s=at_s,
        plan=plan,
        status=status,
        latency_ms=latency_ms,
        served=_text(body.get("served")),
        model=_text(body.get("model")),
        cache=_text(body.get("cache")),
        queue_wait_ms=_float(body.get("queue_wait_ms")),
        retry_after=headers.get("Retry-After") if status == 429 else None,
        degraded_reason=_text(body.get("degraded_reason")),
        trace_id=headers.get("X-Trace-Id"),
    )


def queue_length(status_url: str, timeout_s: float) -> int | None:
    """Requests waiting for admission, from graph_ask's status page (None if unreadable)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(status_url, timeout=timeout_s) as response:
            admission = json.loads(response.read()).get("admission") or {}
    except (OSError, ValueError, AttributeError):
        return None
    waiting = [admission.get(k) for k in ("premium_waiting", "free_waiting")]
    numbers = [w for w in waiting if isinstance(w, int) and not isinstance(w, bool)]
    return sum(numbers) if numbers else None


class Timetable:
    """Arrivals, their samples and the progress line; one per run."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.samples: list[Sample] = []
        self.queue: list[tuple[float, int]] = []  # (at_s, requests waiting for admission)
        self.sent = 0
        self.started = time.monotonic()
        self.done = gevent.event.Event()

    def progress(self) -> str:
        elapsed = time.monotonic() - self.started
        recent = [s for s in self.samples if s.at_s >= elapsed - max(self.spec.progress_s, 2.0)]
        errors = sum(1 for s in recent if s.status not in (200, 429) or s.served == "degraded")
        refused = sum(1 for s in recent if s.status == 429)
        p95 = percentiles(s.latency_ms for s in recent if s.status == 200)
        remaining = max(0.0, self.spec.duration_s - elapsed)
        return (
            f"[{self.spec.label}] {elapsed:5.1f} s elapsed, {remaining:5.1f} s left | "
            f"sent {self.sent}/{self.spec.planned} | "
            f"errors+degraded {errors / len(recent) if recent else 0.0:6.1%} | "
            f"429 {refused / len(recent) if recent else 0.0:6.1%} | "
            f"p95 {p95['p95'] if p95 else float('nan'):7.1f} ms"
        )


class Dispatcher(FastHttpUser):
    """The one user: it sends the timetable's arrivals, each in its own greenlet."""

    timetable: Timetable
    path: str = "/"

    @task
    def dispatch(self) -> None:
        table = self.timetable
        spec = table.spec
        pool = gevent.pool.Pool(spec.max_in_flight)
        table.started = time.monotonic()  # the timetable starts when the user does
        interval = 1.0 / spec.rate_rps
        for index in range(spec.planned):
            scheduled = table.started + index * interval
            delay = scheduled - time.monotonic()
            if delay > 0:
                gevent.sleep(delay)
            pool.spawn(self.one, index, scheduled)  # waits while the pool is full
            table.sent += 1
        pool.join(timeout=spec.timeout_s + 1.0)
        table.done.set()
        raise StopUser()

    def one(self, index: int, scheduled: float) -> None:
        table = self.timetable
        plan = table.spec.plan_of(index)
        response = self.client.request(
            "POST",
            self.path,
            name=plan,
            json={"question": question(index, table.spec), "user": f"load-{plan}-{index % 16}"},
            headers={"X-Plan": plan, "X-User-Id": f"load-{plan}-{index % 16}"},
        )
        latency_ms = (time.monotonic() - scheduled) * 1000.0
        table.samples.append(sample_of(scheduled - table.started, plan, latency_ms, response))


def run(spec: LoadSpec, *, out: Any = sys.stderr) -> dict[str, Any]:
    """Send the load and return its report (progress lines go to ``out``)."""
    from rich.console import Console

    parts = urlsplit(spec.url)
    Dispatcher.host = f"{parts.scheme}://{parts.netloc}"
    Dispatcher.path = parts.path or "/"
    if parts.query:
        Dispatcher.path += f"?{parts.query}"
    Dispatcher.network_timeout = spec.timeout_s
    Dispatcher.connection_timeout = spec.timeout_s
    Dispatcher.concurrency = spec.max_in_flight
    table = Timetable(spec)
    Dispatcher.timetable = table
    console = Console(file=out, highlight=False, markup=False, soft_wrap=True)
    env = Environment(user_classes=[Dispatcher])
    runner = env.create_local_runner()
    runner.start(1, spawn_rate=1)

    def report_progress() -> None:
        while not table.done.wait(spec.progress_s):
            console.print(table.progress())

    def poll_queue() -> None:
        while not table.done.wait(1.0):
            length = queue_length(spec.status_url or "", spec.timeout_s)
            if length is not None:
                table.queue.append((time.monotonic() - table.started, length))

    reporter = gevent.spawn(report_progress)
    poller = gevent.spawn(poll_queue) if spec.status_url else None
    table.done.wait(timeout=spec.duration_s + spec.timeout_s + 30.0)
    elapsed = time.monotonic() - table.started
    runner.quit()
    reporter.kill()
    if poller is not None:
        poller.kill()
    console.print(table.progress())
    return summarize(
        table.samples,
        planned=spec.planned,
        duration_s=spec.duration_s,
        elapsed_s=elapsed,
        target_s=spec.target_s,
        base_rpm=spec.base_rpm,
        queue=table.queue,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(
            "usage: python -m shared.chaos.ctk.locust_load SPEC.json REPORT.json", file=sys.stderr
        )
        return 2
    spec = LoadSpec.from_dict(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    report = run(spec)
    Path(args[1]).write_text(json.dumps(report), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
