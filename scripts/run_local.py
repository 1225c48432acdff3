"""The local stack (``make run``): every function and its peers on 127.0.0.1, fixed ports.

=====  ===========================================================================
port   process
=====  ===========================================================================
8081   chaos_delay   (functions-framework, CHAOS_ENABLED=true, CHAOS_AUTH=none)
8082   chaos_proxy   (functions-framework; upstreams ``demo`` and ``local-llm``)
8083   slo_monitor   (functions-framework; reads the request metrics SQLite)
8084   demo upstream (``scripts.local_upstream``: echo + an OpenAI-style ``local-llm``)
8086   Firestore emulator (google-cloud-cli's jar; project ``demo-local``)
8089   local Slack sink (``shared.slo.slack_sink``: the monitor's alerts land here)
-      local scheduler (``shared.slo.local_scheduler``: POSTs to slo_monitor every 300 s,
       ``SLO_INTERVAL_S`` overrides)
=====  ===========================================================================

Every function records each request into ``.local/metrics.db`` (``LOCAL_METRICS_DB``), which the
monitor reads. Logs go to ``.local/logs/<process>.log``. After start-up a short demo burst of
chaos calls runs so the monitor's first run has data. Ctrl-C (or SIGTERM) stops every child by
process group and exits 0.

``--once`` (or ``RUN_LOCAL_DURATION_S=<seconds>``) is for tests and CI: start everything, run the
demo and one monitor run, print the summary and exit (non-zero if anything failed).
``--port-offset N`` shifts every port by N (to run beside another stack).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from scripts import procs
from scripts.catalog import (
    CHAOS_DELAY,
    CHAOS_PROXY,
    LOCAL_THREADS,
    LOCAL_WORKERS,
    REPO,
    SLO_MONITOR,
    THREADS_ENV,
    WORKERS_ENV,
)

PROJECT = "demo-local"
DEFAULT_INTERVAL_S = 300.0
SLACK_PATH = "/services/local"
#: The local SLO file: the production objectives, SLIs read from the SQLite request store.
LOCAL_SLO_CONFIG = "config/slos.local.yaml"


LLM_EXAMPLE = '{"model": "local-llm", "messages": [{"role": "user", "content": "hi"}]}'
EXPERIMENT_EXAMPLE = '{"upstream": "demo", "mode": "error", "duration_s": 60}'


class StackError(RuntimeError):
    """The local stack cannot start (missing tool, busy port, a child that died)."""


@dataclass(frozen=True, slots=True)
class Ports:
    """The stack's fixed ports (all shifted by ``--port-offset``)."""

    chaos_delay: int = CHAOS_DELAY.local_port
    chaos_proxy: int = CHAOS_PROXY.local_port
    slo_monitor: int = SLO_MONITOR.local_port
    upstream: int = 8084
    firestore: int = 8086
    slack: int = 8089

    def shifted(self, offset: int) -> Ports:
        return Ports(*(getattr(self, f.name) + offset for f in dataclasses.fields(self)))

    def named(self) -> dict[int, str]:
        """``{port: what}`` for the busy-port check's error message."""
        return {getattr(self, f.name): f.name.replace("_", " ") for f in dataclasses.fields(self)}


def interval_from_env(env: Mapping[str, str]) -> float:
    raw = env.get("SLO_INTERVAL_S", "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise StackError(f"SLO_INTERVAL_S must be a number of seconds > 0, got {raw!r}")
    return value


def duration_from_env(env: Mapping[str, str]) -> float | None:
    raw = env.get("RUN_LOCAL_DURATION_S", "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise StackError(f"RUN_LOCAL_DURATION_S must be a number of seconds >= 0, got {raw!r}")
    return value


def stack_env(ports: Ports, state: Path) -> dict[str, str]:
    """The environment every function process gets (on top of this process's)."""
    host = procs.HOST
    upstreams = f"demo=http://{host}:{ports.upstream},local-llm=http://{host}:{ports.upstream}/llm"
    env = dict(os.environ)
    # The parent's credentials or project must not leak into a local run.
    for name in ("GOOGLE_APPLICATION_CREDENTIALS", "K_SERVICE", "GCP_PROJECT"):
        env.pop(name, None)
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            WORKERS_ENV: str(LOCAL_WORKERS),
            THREADS_ENV: str(LOCAL_THREADS),
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "FIRESTORE_EMULATOR_HOST": f"{host}:{ports.firestore}",
            "LOCAL_METRICS_DB": str(state / "metrics.db"),
            "CHAOS_ENABLED": "true",
            "CHAOS_AUTH": "none",
            "CHAOS_UPSTREAMS": upstreams,
            # Local drops hold the connection briefly: the demo must not wait half a minute.
            "CHAOS_DROP_HOLD_S": env.get("CHAOS_DROP_HOLD_S", "5"),
            "SLACK_WEBHOOK_URL": f"http://{host}:{ports.slack}{SLACK_PATH}",
            "SLO_CONFIG": str(REPO / LOCAL_SLO_CONFIG),
            "ALERT_LINK_URL": f"http://{host}:{ports.chaos_delay}/",
        }
    )
    return env


def function_argv(name: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "functions_framework",
        "--target",
        name,
        "--source",
        str(REPO / "functions" / name / "main.py"),
        "--host",
        procs.HOST,
        "--port",
        str(port),
    ]


def http(method: str, url: str, timeout: float = 30.0, json_body: object = None) -> tuple[int, str]:
    """``(status, body)`` of one request; connection failures are status 0."""
    data = json.dumps(json_body).encode() if json_body is not None else None
    if data is None and method == "POST":
        data = b""
    headers = {"Content-Type": "application/json"} if json_body is not None else {}
    request = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


class Stack:
    """Starts the processes in dependency order and stops them all, whatever happens."""

    def __init__(self, ports: Ports, state: Path, interval_s: float) -> None:
        self.ports = ports
        self.state = state
        self.interval_s = interval_s
        self.group = procs.ProcessGroup(state / "logs")
        self.env = stack_env(ports, state)

    def url(self, port: int, path: str = "/") -> str:
        return f"http://{procs.HOST}:{port}{path}"

    def start(self) -> None:
        procs.check_ports_free(self.ports.named())
        self.state.mkdir(parents=True, exist_ok=True)
        argv = procs.firestore_emulator_argv(self.ports.firestore)
        py = sys.executable
        group = self.group
        # Start everything first, then wait: the emulator's JVM start-up overlaps the rest.
        firestore = procs.spawn(
            "firestore",
            argv,
            port=self.ports.firestore,
            log_dir=group.log_dir,
        )
        group.children.append(firestore)
        functions = []
        for spec, port in (
            (CHAOS_DELAY, self.ports.chaos_delay),
            (CHAOS_PROXY, self.ports.chaos_proxy),
            (SLO_MONITOR, self.ports.slo_monitor),
        ):
            child = procs.spawn(
                spec.name,
                function_argv(spec.name, port),
                port=port,
                log_dir=group.log_dir,
                env=self.env,
                cwd=REPO,
            )
            group.children.append(child)
            functions.append(child)
        helpers = []
        for name, module, port in (
            ("upstream", "scripts.local_upstream", self.ports.upstream),
            ("slack_sink", "shared.slo.slack_sink", self.ports.slack),
        ):
            helper = procs.spawn(
                name,
                [py, "-m", module, "--port", str(port)],
                port=port,
                log_dir=group.log_dir,
                env=self.env,
                cwd=REPO,
            )
            group.children.append(helper)
            helpers.append(helper)
        for child in [*helpers, *functions]:
            child.wait_for_port(30)
        firestore.wait_for_port(60)
        scheduler = procs.spawn(
            "scheduler",
            [
                py,
                "-m",
                "shared.slo.local_scheduler",
                "--url",
                self.url(self.ports.slo_monitor),
                "--interval",
                f"{self.interval_s:g}",
            ],
            port=None,
            log_dir=group.log_dir,
            env=self.env,
            cwd=REPO,
        )
        group.children.append(scheduler)

    def stop(self) -> None:
        self.group.stop_all()

    def check_alive(self) -> None:
        dead = self.group.exited()
        if dead:
            child = dead[0]
            raise StackError(
                f"{child.name} exited with {child.proc.returncode}\n--- {child.log} ---\n"
                f"{child.tail()}"
            )

    # --- what the user sees -------------------------------------------------------------------

    def banner(self) -> str:
        p = self.ports
        llm = self.url(p.chaos_proxy, "/chaos_proxy/local-llm/v1/chat/completions")
        lines = [
            "local stack is up (Ctrl-C stops everything):",
            f"  chaos_delay    {self.url(p.chaos_delay)}",
            f"  chaos_proxy    {self.url(p.chaos_proxy)}",
            f"  slo_monitor    {self.url(p.slo_monitor)}",
            f"  demo upstream  {self.url(p.upstream)}",
            f"  Firestore      {procs.HOST}:{p.firestore} (project {PROJECT})",
            f"  Slack sink     {self.url(p.slack, SLACK_PATH)}",
            f"  scheduler      POST {self.url(p.slo_monitor)} every {self.interval_s:g} s",
            f"  metrics        {self.env['LOCAL_METRICS_DB']}",
            f"  logs           {self.group.log_dir}/",
            "",
            "try:",
            f"  curl '{self.url(p.chaos_delay)}?p=0.2&d=300'",
            f"  curl '{self.url(p.chaos_proxy)}?mode=error'",
            f"  curl '{self.url(p.chaos_proxy, '/chaos_proxy/demo/hello')}'",
            f"  curl -X POST '{llm}' -H 'Content-Type: application/json' -d '{LLM_EXAMPLE}'",
            f"  curl -X POST '{self.url(p.chaos_proxy, '/chaos_proxy/_experiments')}'"
            f" -H 'Content-Type: application/json' -d '{EXPERIMENT_EXAMPLE}'",
            f"  curl -X POST '{self.url(p.slo_monitor)}'",
        ]
        return "\n".join(lines)

    def demo(self, calls: int = 40) -> dict[str, int]:
        """A short burst of chaos traffic; returns ``{"<function> <status>": count}``."""
        p = self.ports
        urls = [self.url(p.chaos_delay, "/?p=0.2&d=20")] * calls
        urls += [self.url(p.chaos_proxy, "/chaos_proxy/demo/hello")] * (calls // 4)
        urls += [self.url(p.chaos_proxy, "/?mode=error")] * (calls // 8)
        llm = self.url(p.chaos_proxy, "/chaos_proxy/local-llm/v1/chat/completions")
        urls += [llm] * (calls // 8)

        def call(url: str) -> tuple[str, int]:
            if url == llm:
                return url, http("POST", url, json_body=json.loads(LLM_EXAMPLE))[0]
            return url, http("GET", url)[0]

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(call, urls))
        counts: dict[str, int] = {}
        for url, status in results:
            name = "chaos_delay" if f":{p.chaos_delay}/" in url else "chaos_proxy"
            key = f"{name} {status}"
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def slack_messages(self) -> str:
        """What the local Slack sink printed so far (the alerts it received)."""
        for child in self.group.children:
            if child.name == "slack_sink":
                text = child.tail(4000).strip()
                lines = [x for x in text.splitlines() if not x.startswith("local Slack sink")]
                return "\n".join(lines)
        return ""

    def monitor_once(self) -> tuple[int, str]:
        """One slo_monitor run, as the scheduler would trigger it."""
        return http("POST", self.url(self.ports.slo_monitor), timeout=SLO_MONITOR.timeout_s)


def summarize_monitor(status: int, body: str) -> str:
    """The scheduler's one-line summary of a monitor run (the raw answer if it is not JSON)."""
    from shared.slo.local_scheduler import summarize

    try:
        data = json.loads(body)
    except ValueError:
        return f"slo_monitor: HTTP {status}: {body[:500]}"
    return f"slo_monitor: {summarize(status, data)}"


def slo_window_s(config: Path = REPO / LOCAL_SLO_CONFIG) -> int:
    """The local SLO file's ``window`` in seconds (300 if it cannot be read)."""
    import yaml

    from shared.slo.durations import parse_duration

    try:
        return parse_duration(yaml.safe_load(config.read_text())["window"])
    except (OSError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return 300


def window_note(now: float) -> str:
    """When the demo's traffic gets evaluated: runs look at the last *closed* window."""
    window = slo_window_s()
    closes = (now // window + 1) * window
    stamp = time.strftime("%H:%M:%S", time.gmtime(closes))
    return (
        f"(the monitor evaluates the last closed {window // 60}-minute window; the demo's "
        f"requests are in the one closing at {stamp} UTC, which the next run after it evaluates)"
    )


def run(args: argparse.Namespace) -> int:
    env = os.environ
    interval = args.interval if args.interval is not None else interval_from_env(env)
    duration = 0.0 if args.once else duration_from_env(env)
    ports = Ports().shifted(args.port_offset)
    stack = Stack(ports, args.state_dir.resolve(), interval)

    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    failed = False
    try:
        started = time.monotonic()
        stack.start()
        print(stack.banner(), flush=True)
        print(f"(started in {time.monotonic() - started:.1f} s)", flush=True)
        if not args.no_demo and not stopping.is_set():
            print(f"\ndemo burst: {stack.demo()}", flush=True)
        if not stopping.is_set():
            # One run now, so the first summary does not wait for the scheduler's next tick.
            status, body = stack.monitor_once()
            print(summarize_monitor(status, body), flush=True)
            print(window_note(time.time()), flush=True)
            # --once / a timed run reports a failed monitor run; an interactive one keeps going.
            failed = duration is not None and status != 200
            alerts = stack.slack_messages()
            if alerts:
                print(f"\nSlack sink received:\n{alerts}", flush=True)
        if duration is not None:
            deadline = time.monotonic() + duration
            while not stopping.is_set() and time.monotonic() < deadline:
                stack.check_alive()
                stopping.wait(0.5)
            stack.check_alive()
        else:
            print(
                f"\nrunning; the scheduler runs slo_monitor every {interval:g} s "
                f"(its log: {stack.group.log_dir / 'scheduler.log'}). Ctrl-C stops.",
                flush=True,
            )
            while not stopping.is_set():
                stack.check_alive()
                stopping.wait(0.5)
    except (StackError, procs.ProcessError) as exc:
        print(f"\nrun_local: {exc}", file=sys.stderr, flush=True)
        failed = True
    finally:
        print("\nstopping the local stack ...", flush=True)
        stack.stop()
        for sig, handler in previous.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(sig, handler)
        print("stopped.", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the local stack on 127.0.0.1 (see the module docstring for ports)."
    )
    parser.add_argument(
        "--once",
        action="store_true",
        help="start, run the demo and one monitor run, print the summary and exit",
    )
    parser.add_argument("--no-demo", action="store_true", help="skip the demo traffic burst")
    parser.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between scheduled monitor runs (default SLO_INTERVAL_S or 300)",
    )
    parser.add_argument(
        "--port-offset", type=int, default=0, help="add this to every port (default 0)"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=REPO / ".local",
        help="where metrics.db and logs/ go (default .local/)",
    )
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (StackError, procs.ProcessError) as exc:
        print(f"run_local: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
