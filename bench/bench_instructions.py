"""CPU instructions per request of ``chaos_delay?p=0&d=0``, the hello and the same-response floor.

The noise-free companion of ``bench_chaos`` step 1. On a shared VM throughput drifts by tens of
percent within seconds, so a few percent of overhead hides in the spread of round ratios.
Instructions executed do not drift: each app answers requests in-process (WSGI, no sockets)
under valgrind's callgrind, once for ``FEW`` and once for ``MANY`` requests, and the difference
divided by ``MANY - FEW`` is the cost of one request, start-up excluded. Instructions are not
time (cache misses and the network stack are left out), but a change that removes work shows
here exactly, which is what an optimisation needs to see.

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
from pathlib import Path

from scripts.catalog import REPO

HELLO = REPO / "bench" / "hello" / "main.py"
FEW = 200
MANY = 1200
SERVERS = (
    ("hello", HELLO, "hello"),
    ("floor (same response, no logic)", HELLO, "same_response"),
    ("chaos_delay", REPO / "functions" / "chaos_delay" / "main.py", "chaos_delay"),
)
PATH = "/?p=0&d=0"


def serve_in_process(source: str, target: str, requests: int) -> None:
    """Answer ``requests`` GETs of ``PATH`` through the app's WSGI callable (the measured run)."""
    import functions_framework
    from werkzeug.test import EnvironBuilder

    app = functions_framework.create_app(target=target, source=source)
    headers = {"Host": "127.0.0.1:8080", "User-Agent": "bench"}
    base = EnvironBuilder(path=PATH, headers=headers).get_environ()

    def start_response(status: str, headers: object, exc_info: object = None) -> None:
        pass

    # Request log lines go to /dev/null: their write is the kernel's cost, not the function's.
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    for _ in range(requests):
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(b"")
        for _chunk in app(environ, start_response):
            pass


def collected(source: Path, target: str, requests: int) -> int:
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
    )
    argv = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        "-m",
        "bench.bench_instructions",
        "--serve",
        str(source),
        target,
        str(requests),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    match = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"valgrind run failed ({done.returncode}): {done.stderr[-500:]}")
    return int(match.group(1))


def per_request(source: Path, target: str) -> float:
    with ThreadPoolExecutor(max_workers=2) as pool:
        few, many = pool.map(lambda n: collected(source, target, n), (FEW, MANY))
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
    costs: dict[str, float] = {}
    for name, source, target in SERVERS:
        costs[name] = per_request(source, target)
    hello = costs["hello"]
    for name, cost in costs.items():
        print(f"  {name:<34} {cost / 1000:8.1f}k instructions   hello/this {hello / cost:.3f}")
    floor = costs[SERVERS[1][0]]
    chaos = costs["chaos_delay"]
    print(f"\n  response contract (floor over hello)      +{(floor - hello) / 1000:.1f}k")
    print(f"  chaos_delay's own work (over the floor)  +{(chaos - floor) / 1000:.1f}k")
    print(f"  floor/chaos_delay (its work alone)        {floor / chaos:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
