"""CPU instructions per request of ``chaos_delay?p=0&d=0``, the hello and the same-response floor,
with tracing on (``TRACE_SAMPLE_RATE=1``, every span recorded) and off (``TRACE_SAMPLE_RATE=0``:
the parent-based ratio sampler drops every span, so spans exist but record nothing).

The noise-free companion of ``bench_chaos`` step 1. On a shared VM throughput drifts by tens of
percent within seconds, so a few percent of overhead hides in the spread of round ratios.
Instructions executed do not drift: each app answers requests in-process (WSGI, no sockets)
under valgrind's callgrind, once for ``FEW`` and once for ``MANY`` requests, and the difference
divided by ``MANY - FEW`` is the cost of one request, start-up excluded. Instructions are not
time (cache misses and the network stack are left out), but a change that removes work shows
here exactly, which is what an optimisation needs to see.

Start-up must cost the same in both runs for the difference to cancel it: the first request
starts OpenTelemetry, whose exporters attach on a background thread, so the measured process
waits for that thread (``telemetry.start(wait=True)``) before its counted requests.

With tracing on, repeated runs differ by up to ~2% (random ids, randomly sampled log lines);
with it off by well under 1%. A change smaller than that needs a few runs to be seen.

No target: ``bench_chaos`` holds the throughput target. Skipped when valgrind is not installed
(``make bench`` installs it). Run: ``python -m bench.bench_instructions``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from scripts.catalog import REPO

HELLO = REPO / "bench" / "hello" / "main.py"
CHAOS_DELAY = REPO / "functions" / "chaos_delay" / "main.py"
FEW = 200
MANY = 1200
PATH = "/?p=0&d=0"
#: Served before the counted requests in every run: first-request set-up (settings, telemetry).
WARMUP = 20


@dataclass(frozen=True, slots=True)
class Subject:
    """One measured app: a functions-framework target and the environment it runs with."""

    name: str
    source: Path
    target: str
    env: dict[str, str] = field(default_factory=dict)


SUBJECTS = (
    Subject("hello", HELLO, "hello"),
    Subject("floor (same response, no logic)", HELLO, "same_response"),
    Subject("chaos_delay, tracing on", CHAOS_DELAY, "chaos_delay", {"TRACE_SAMPLE_RATE": "1"}),
    Subject("chaos_delay, tracing off", CHAOS_DELAY, "chaos_delay", {"TRACE_SAMPLE_RATE": "0"}),
)


def serve_in_process(source: str, target: str, requests: int) -> None:
    """Answer ``requests`` GETs of ``PATH`` through the app's WSGI callable (the measured run)."""
    import functions_framework
    from werkzeug.test import EnvironBuilder

    app = functions_framework.create_app(target=target, source=source)
    headers = {"Host": "127.0.0.1:8080", "User-Agent": "bench"}
    base = EnvironBuilder(path=PATH, headers=headers).get_environ()

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        pass

    def answer(count: int) -> None:
        for _ in range(count):
            environ = dict(base)
            environ["wsgi.input"] = io.BytesIO(b"")
            for _chunk in app(environ, start_response):
                pass

    # Request log lines go to /dev/null: their write is the kernel's cost, not the function's.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    answer(WARMUP)
    telemetry = sys.modules.get("shared.obs.telemetry")
    if telemetry is not None:  # the app started it: wait until its exporters are attached
        telemetry.start(target, wait=True)
    answer(requests)


def collected(subject: Subject, requests: int) -> int:
    """Instructions callgrind counted for start-up plus ``requests`` requests."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"LOCAL_METRICS_DB", "K_SERVICE", "GOOGLE_APPLICATION_CREDENTIALS"}
    }
    env.update(
        PYTHONPATH=str(REPO),
        PYTHONHASHSEED="0",
        GOOGLE_CLOUD_PROJECT="demo-bench",
        CHAOS_ENABLED="true",
        CHAOS_AUTH="none",
        # Under valgrind on a busy machine a request can pass the 1 s "slow" mark and be logged:
        # the machine's cost, not the function's. Sampled log lines (1%) are still counted.
        REQUEST_LOG_SLOW_MS="3600000",
    )
    env.update(subject.env)
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.bench_instructions",
        "--serve",
        str(subject.source),
        subject.target,
        str(requests),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"valgrind run failed ({done.returncode}): {done.stderr[-500:]}")
    return int(match.group(1))


def per_request(subject: Subject) -> float:
    with ThreadPoolExecutor(max_workers=2) as pool:
        few, many = pool.map(lambda n: collected(subject, n), (FEW, MANY))
    return (many - few) / (MANY - FEW)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        serve_in_process(argv[1], argv[2], int(argv[3]))
        return 0
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (make bench installs it)")
        return 0
    print(f"instructions per request of GET {PATH}, in-process WSGI under callgrind")
    print(f"({MANY} minus {FEW} requests; start-up excluded)\n")
    costs = {subject.name: per_request(subject) for subject in SUBJECTS}
    hello, floor, traced, untraced = (costs[s.name] for s in SUBJECTS)
    for name, cost in costs.items():
        print(f"  {name:<34} {cost / 1000:8.1f}k instructions   hello/this {hello / cost:.3f}")
    print(f"\n  response contract (floor over hello)          +{(floor - hello) / 1000:.1f}k")
    for label, cost in (("tracing on", traced), ("tracing off", untraced)):
        print(
            f"  chaos_delay's own work, {label:<12} (over the floor) +{(cost - floor) / 1000:.1f}k"
            f"   floor/chaos_delay {floor / cost:.3f}"
        )
    print(f"  recording spans (tracing on over off)         +{(traced - untraced) / 1000:.1f}k")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
