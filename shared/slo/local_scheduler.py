"""The local Cloud Scheduler: POST the monitor every ``--interval`` seconds, one line per run.

``python -m shared.slo.local_scheduler --url http://127.0.0.1:8083/ --interval 300``

Runs are aligned to multiples of the interval (like ``*/5 * * * *``) unless ``--now`` asks for a
first run at start. Stops cleanly on SIGINT/SIGTERM, also mid-wait.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def summarize(status: int, body: Any) -> str:
    """One readable line from the monitor's JSON answer."""
    if not isinstance(body, dict):
        return f"HTTP {status}: {str(body)[:200]}"
    if "evaluated" not in body:
        summary = body.get("summary")
        if isinstance(summary, dict):
            return f"HTTP {status} {body.get('error')}: " + summarize(status, summary)
        return f"HTTP {status} {body.get('error', '')}: {body.get('message', '')}"[:500]
    violations = body.get("violations", {})
    new, ongoing = violations.get("new", []), violations.get("ongoing", [])
    alerts = body.get("alerts", {})
    parts = [
        f"HTTP {status}",
        f"{body['evaluated']} SLOs",
        f"ok {len(body.get('ok', []))}",
        f"violations {len(new) + len(ongoing)} (new: {', '.join(new) or '-'};"
        f" ongoing: {', '.join(ongoing) or '-'})",
        f"recovered {', '.join(body.get('recoveries', [])) or '-'}",
        f"no data {len(body.get('no_data', []))}",
        f"alerts sent {len(alerts.get('sent', []))} failed {len(alerts.get('failed', []))}"
        f" pending {alerts.get('pending', 0)}",
    ]
    if body.get("no_data_alerts"):
        parts.append(f"no-data alerts {', '.join(body['no_data_alerts'])}")
    if alerts.get("deferred"):
        parts.append(f"deferred by Slack {len(alerts['deferred'])}")
    if body.get("errors"):
        parts.append(f"errors {', '.join(body['errors'])}")
    return " | ".join(parts)


def call(url: str, timeout_s: float) -> str:
    """POST ``url`` once; the summary line (never raises)."""
    request = urllib.request.Request(url, data=b"{}", method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (OSError, TimeoutError) as exc:
        return f"unreachable: {exc}"
    try:
        body: Any = json.loads(raw)
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return summarize(status, body)


def next_tick(now: float, interval: float) -> float:
    """The next multiple of ``interval`` seconds after ``now`` (epoch seconds)."""
    return (now // interval + 1) * interval


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8083/")
    parser.add_argument("--interval", type=float, default=300.0, help="seconds between runs")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    parser.add_argument("--now", action="store_true", help="also run once at start")
    parser.add_argument("--count", type=int, default=0, help="stop after N runs (0: never)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error(f"--interval must be > 0 seconds; got {args.interval}")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"local scheduler: POST {args.url} every {args.interval:g} s", flush=True)
    runs = 0
    due = time.time() if args.now else next_tick(time.time(), args.interval)
    while not stop.wait(max(0.0, due - time.time())):
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        print(f"{stamp} slo_monitor {call(args.url, args.timeout)}", flush=True)
        runs += 1
        if args.count and runs >= args.count:
            break
        due = next_tick(time.time(), args.interval)
    print("local scheduler: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
