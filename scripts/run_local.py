"""The local stack (``make run``): every function and its peers on 127.0.0.1, fixed ports.

Each function is served as functions-framework serves it, through ``shared.chaos.serve`` (the
same app and gunicorn class, with request limits and a read timeout).

=====  ===========================================================================
port   process
=====  ===========================================================================
8081   chaos_delay   (CHAOS_ENABLED=true, CHAOS_AUTH=none)
8082   chaos_proxy   (upstreams ``demo``, ``local-llm``, ``llm``, ``neo4j``, ``insights``)
8083   slo_monitor   (reads the request metrics SQLite)
8084   stand-in upstreams (``scripts.local_upstream``: echo, an OpenAI-style LLM, the Neo4j
       stand-in, the insights sink); chaos_proxy forwards ``demo``, ``local-llm``, ``llm``,
       ``neo4j`` and ``insights`` to it
8085   graph_ask     (the system under test, ``examples/graph_ask``: graph through chaos_proxy
       ``neo4j``, primary model through ``llm``, fallback model direct, insights through
       ``insights``)
8086   Firestore emulator (google-cloud-cli's jar; project ``demo-local``)
8089   local Slack sink (``shared.slo.slack_sink``: the monitor's alerts land here)
-      local scheduler (``shared.slo.local_scheduler``: POSTs to slo_monitor every 300 s,
       ``SLO_INTERVAL_S`` overrides)
=====  ===========================================================================

Every function records each request into ``.local/metrics.db`` (``LOCAL_METRICS_DB``), and
exports its OpenTelemetry metrics there every 10 s; the monitor reads both (graph_ask's records
are named ``graphAsk`` and ``insights``, its deliveries counted by ``insights/deliveries``: the
seed's SLOs).
Logs go to ``.local/logs/<process>.log``. After start-up a short demo burst (questions to
graph_ask, insight deliveries, chaos calls) runs so the monitor's first run has data; then the
main job: a short rehearsal of the weekly playbooks (``chaos run`` each with
``PLAYBOOK_REHEARSAL=1``), their verdict table and journals; then the stack stays up until Ctrl-C
(or SIGTERM), which stops every child by process group and exits 0.

``--once`` (or ``RUN_LOCAL_DURATION_S=<seconds>``) is for tests and CI: start everything, run the
demo and one monitor run, print the summary and exit (non-zero if anything failed); it rehearses
only with ``--rehearse``. ``--no-rehearsal`` skips the rehearsal of an interactive run.
``--port-offset N`` shifts every port by N (to run beside another stack).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
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
EXPERIMENT_EXAMPLE = '{"upstream": "neo4j", "mode": "slow", "slow_ms": 1500, "duration_s": 60}'
ASK_EXAMPLE = '{"question": "What is Neo4j?"}'
#: The system under test: its source, entry point and the model names of its model table.
GRAPH_ASK_SOURCE = REPO / "examples" / "graph_ask" / "main.py"
GRAPH_ASK_TARGET = "graph_ask"
PRIMARY_MODEL = "primary-llm"
FALLBACK_MODEL = "fallback-llm"
#: A model to roll out over the primary (through chaos_proxy ``llm-candidate``, so experiments
#: can make the candidate alone slower or failing); the rollout graph_ask follows.
CANDIDATE_MODEL = "candidate-llm"
ROLLOUT_NAME = "graph-ask-model"
ROLLOUT_CONFIG = "config/canary.yaml"
#: The admin page: served by Firebase Hosting from public/ (not by the local stack).
ADMIN_PAGE = "public/index.html (Firebase Hosting: /app/admin/chaos-testing)"
PLAYBOOKS_DIR = REPO / "playbooks"
#: What the rehearsal sets for each ``chaos run``: the playbooks' short settings.
REHEARSAL_ENV = "PLAYBOOK_REHEARSAL"
#: Bound of one playbook's rehearsal (seconds); a longer one is stopped and reported.
REHEARSAL_TIMEOUT_S = 300.0


class StackError(RuntimeError):
    """The local stack cannot start (missing tool, busy port, a child that died)."""


@dataclass(frozen=True, slots=True)
class Ports:
    """The stack's fixed ports (all shifted by ``--port-offset``)."""

    chaos_delay: int = CHAOS_DELAY.local_port
    chaos_proxy: int = CHAOS_PROXY.local_port
    slo_monitor: int = SLO_MONITOR.local_port
    upstream: int = 8084
    graph_ask: int = 8085
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


def model_table(ports: Ports) -> dict[str, object]:
    """graph_ask's ``LLM_MODEL_TABLE``: the primary model through chaos_proxy's ``llm``
    upstream (so experiments can take it down), the fallback straight to the stand-in."""
    proxy = f"http://{procs.HOST}:{ports.chaos_proxy}/chaos_proxy/llm/v1"
    candidate = f"http://{procs.HOST}:{ports.chaos_proxy}/chaos_proxy/llm-candidate/v1"
    direct = f"http://{procs.HOST}:{ports.upstream}/llm/v1"
    return {
        "models": {
            PRIMARY_MODEL: {"provider": "openai", "base_url": proxy, "timeout": 2.0},
            CANDIDATE_MODEL: {"provider": "openai", "base_url": candidate, "timeout": 2.0},
            FALLBACK_MODEL: {"provider": "openai", "base_url": direct, "timeout": 2.0},
        }
    }


def stack_env(ports: Ports, state: Path) -> dict[str, str]:
    """The environment every function process gets (on top of this process's)."""
    host = procs.HOST
    base = f"http://{host}:{ports.upstream}"
    proxy = f"http://{host}:{ports.chaos_proxy}/chaos_proxy"
    upstreams = ",".join(
        (
            f"demo={base}",
            f"local-llm={base}/llm",
            f"llm={base}/llm",
            f"llm-candidate={base}/llm",
            f"neo4j={base}/neo4j",
            f"insights={base}/insights",
        )
    )
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
            "REQUEST_SINK": "shared.slo.local_store:batch_writer_from_env",
            # Spans and metrics of every process, as JSON lines: python -m shared.obs.traces.
            "TELEMETRY_FILE": str(state / "telemetry.jsonl"),
            "TELEMETRY_METRIC_INTERVAL_S": "10",
            # ... and the metrics into the store too, which the monitor reads (insights SLO).
            "TELEMETRY_METRIC_SINK": "shared.slo.local_metrics:exporter_from_env",
            "CHAOS_ENABLED": "true",
            "CHAOS_AUTH": "none",
            "CHAOS_UPSTREAMS": upstreams,
            # Local drops hold the connection briefly: the demo must not wait half a minute.
            "CHAOS_DROP_HOLD_S": env.get("CHAOS_DROP_HOLD_S", "5"),
            "SLACK_WEBHOOK_URL": f"http://{host}:{ports.slack}{SLACK_PATH}",
            "SLO_CONFIG": str(REPO / LOCAL_SLO_CONFIG),
            # The alert button opens the system under test's status page (read-only), never a
            # URL that injects failures.
            "ALERT_LINK_URL": f"http://{host}:{ports.graph_ask}/graph_ask/_status",
            "GRAPH_URL": f"{proxy}/neo4j",
            "INSIGHTS_SINK_URL": f"{proxy}/insights/deliveries",
            "LLM_MODEL_TABLE": str(state / "llm-models.json"),
            "GRAPH_ASK_MODELS": f"{PRIMARY_MODEL},{FALLBACK_MODEL}",
            "GRAPH_ASK_ROLLOUT": ROLLOUT_NAME,
            "ROLLOUT_CONFIG": str(REPO / ROLLOUT_CONFIG),
        }
    )
    return env


def function_argv(name: str, port: int, source: Path | None = None) -> list[str]:
    """functions-framework serving ``name`` from ``functions/<name>/main.py`` (or ``source``),
    through :mod:`shared.chaos.serve`: the same app and gunicorn class, with request-line and
    header limits and a read timeout, which functions-framework's own CLI cannot set."""
    return [
        sys.executable,
        "-m",
        "shared.chaos.serve",
        "--target",
        name,
        "--source",
        str(source or REPO / "functions" / name / "main.py"),
        "--host",
        procs.HOST,
        "--port",
        str(port),
    ]


def http(
    method: str,
    url: str,
    timeout: float = 30.0,
    json_body: object = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """``(status, body)`` of one request; connection failures are status 0."""
    data = json.dumps(json_body).encode() if json_body is not None else None
    if data is None and method == "POST":
        data = b""
    sent = {"Content-Type": "application/json"} if json_body is not None else {}
    sent.update(headers or {})
    request = urllib.request.Request(url, method=method, data=data, headers=sent)
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
        table = json.dumps(model_table(self.ports), indent=2)
        Path(self.env["LLM_MODEL_TABLE"]).write_text(table + "\n")
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
        for name, port, source in (
            (CHAOS_DELAY.name, self.ports.chaos_delay, None),
            (CHAOS_PROXY.name, self.ports.chaos_proxy, None),
            (SLO_MONITOR.name, self.ports.slo_monitor, None),
            (GRAPH_ASK_TARGET, self.ports.graph_ask, GRAPH_ASK_SOURCE),
        ):
            child = procs.spawn(
                name,
                function_argv(name, port, source),
                port=port,
                log_dir=group.log_dir,
                env={**self.env, "OTEL_SERVICE_NAME": name},
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
        self.warm_up()

    def start_scheduler(self) -> None:
        """Start the local Cloud Scheduler. After the first monitor run, not with the stack: two
        runs at once contend for the same SLO documents, and the emulator settles each conflict
        with a ~2 s lock wait (a losing run took 4-40 s)."""
        scheduler = procs.spawn(
            "scheduler",
            [
                sys.executable,
                "-m",
                "shared.slo.local_scheduler",
                "--url",
                self.url(self.ports.slo_monitor),
                "--interval",
                f"{self.interval_s:g}",
            ],
            port=None,
            log_dir=self.group.log_dir,
            env=self.env,
            cwd=REPO,
        )
        self.group.children.append(scheduler)

    def warm_up(self) -> None:
        """One forwarded request per upstream graph_ask uses, so chaos_proxy has made its
        Firestore client and read each upstream's experiments before the first question (a cold
        proxy would take longer than graph_ask's bounded graph timeout)."""
        for upstream in ("neo4j", "llm", "insights"):
            http("GET", self.url(self.ports.chaos_proxy, f"/chaos_proxy/{upstream}/health"))

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
            f"  graph_ask      {self.url(p.graph_ask, '/graph_ask')}  (the system under test;"
            f" status {self.url(p.graph_ask, '/graph_ask/_status')})",
            f"  chaos_delay    {self.url(p.chaos_delay)}",
            f"  chaos_proxy    {self.url(p.chaos_proxy)}  (upstreams demo, local-llm, llm,"
            " llm-candidate, neo4j, insights)",
            f"  slo_monitor    {self.url(p.slo_monitor)}",
            f"  upstreams      {self.url(p.upstream)}  (echo, LLM, Neo4j stand-in, insights sink)",
            f"  Firestore      {procs.HOST}:{p.firestore} (project {PROJECT})",
            f"  Slack sink     {self.url(p.slack, SLACK_PATH)}",
            f"  scheduler      POST {self.url(p.slo_monitor)} every {self.interval_s:g} s",
            f"  metrics        {self.env['LOCAL_METRICS_DB']}",
            f"  traces         {self.env['TELEMETRY_FILE']}  (python -m shared.obs.traces"
            f" --file {self.env['TELEMETRY_FILE']} --slowest)",
            f"  logs           {self.group.log_dir}/",
            f"  admin page     {ADMIN_PAGE}",
            "",
            "try:",
            f"  curl -X POST '{self.url(p.graph_ask, '/graph_ask')}' -H 'X-Plan: premium'"
            f" -H 'Content-Type: application/json' -d '{ASK_EXAMPLE}'",
            f"  curl -X POST '{self.url(p.chaos_proxy, '/chaos_proxy/_experiments')}'"
            f" -H 'Content-Type: application/json' -d '{EXPERIMENT_EXAMPLE}'",
            "  make playbook PLAYBOOK=neo4j-slow     (a Chaos Toolkit run against this stack)",
            f"  python -m shared.canary start {ROLLOUT_NAME} --service graphAsk"
            f" --stable {PRIMARY_MODEL} --candidate {CANDIDATE_MODEL}"
            " --slos graphAsk-latency,graphAsk-errors   (the monitor's gate takes it from there;"
            " with FIRESTORE_EMULATOR_HOST and GOOGLE_CLOUD_PROJECT of this stack)",
            f"  curl '{self.url(p.chaos_delay)}?p=0.2&d=300'",
            f"  curl '{self.url(p.chaos_proxy)}?mode=error'",
            f"  curl '{self.url(p.chaos_proxy, '/chaos_proxy/demo/hello')}'",
            f"  curl -X POST '{llm}' -H 'Content-Type: application/json' -d '{LLM_EXAMPLE}'",
            f"  curl -X POST '{self.url(p.slo_monitor)}'",
        ]
        return "\n".join(lines)

    def slowest_trace(self, wait_s: float = 8.0) -> str:
        """The slowest graph_ask request of the demo as a span tree across the processes.

        Spans reach the file in batches (every few seconds per process), so this waits until a
        graph_ask trace spans graph_ask, chaos_proxy and the upstream, or ``wait_s`` passes.
        """
        from shared.obs import traces

        path = Path(self.env["TELEMETRY_FILE"])
        deadline = time.monotonic() + wait_s
        while True:
            trees = {}
            if path.exists():
                with path.open(encoding="utf-8") as handle:
                    trees = traces.build_trees(traces.read_spans(handle))
            complete = {
                trace_id: roots
                for trace_id, roots in trees.items()
                if any(r.service == GRAPH_ASK_TARGET for r in roots)
                and len({s.service for s in traces.flatten(roots)}) >= 3
            }
            if complete or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        trace_id = traces.slowest(complete) if complete else None
        if trace_id is None:
            return f"\n(no graph_ask trace across three processes in {path} yet)"
        lines = traces.render(complete[trace_id])
        return f"\nslowest graph_ask request of the demo, trace {trace_id}:\n" + "\n".join(lines)

    def demo(self, calls: int = 40) -> dict[str, int]:
        """A short burst of traffic; returns ``{"<record name> <status>": count}``.

        Chaos calls in parallel and, beside them, questions to graph_ask (premium and free, a
        few topics so the cache answers the repeats) paced under its admission capacity (the
        demo shows the service, not its rate limit), and a few insight deliveries.
        """
        p = self.ports
        llm = self.url(p.chaos_proxy, "/chaos_proxy/local-llm/v1/chat/completions")
        chaos: list[tuple[str, str, str, object]] = []
        chaos += [("chaos_delay", "GET", self.url(p.chaos_delay, "/?p=0.2&d=20"), None)] * calls
        hello = self.url(p.chaos_proxy, "/chaos_proxy/demo/hello")
        chaos += [("chaos_proxy", "GET", hello, None)] * (calls // 4)
        chaos += [("chaos_proxy", "GET", self.url(p.chaos_proxy, "/?mode=error"), None)] * (
            calls // 8
        )
        chaos += [("chaos_proxy", "POST", llm, json.loads(LLM_EXAMPLE))] * (calls // 8)

        def call(item: tuple[str, str, str, object]) -> str:
            what, method, url, body = item
            return f"{what} {http(method, url, json_body=body)[0]}"

        with ThreadPoolExecutor(max_workers=8) as pool:
            paced = pool.submit(self._graph_ask_demo, calls // 5)
            results = list(pool.map(call, chaos))
            results += paced.result()
        counts: dict[str, int] = {}
        for key in results:
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))

    def _graph_ask_demo(self, questions: int, pace_s: float = 0.5) -> list[str]:
        """``questions`` asks to graph_ask, one every ``pace_s``, then insight deliveries."""
        p = self.ports
        topics = ("Neo4j", "Cypher", "Firestore")
        ask = self.url(p.graph_ask, "/graph_ask")
        results = []
        for n in range(questions):
            plan = "premium" if n % 2 else "free"
            body = {"question": f"What is {topics[n % len(topics)]}?"}
            status = http("POST", ask, json_body=body, headers={"X-Plan": plan})[0]
            results.append(f"graphAsk {status}")
            time.sleep(pace_s)
        deliver = self.url(p.graph_ask, "/insights/deliver")
        for n in range(max(1, questions // 2)):
            insight = {"insight": {"kind": "demo", "n": n}}
            results.append(f"insights {http('POST', deliver, json_body=insight)[0]}")
        return results

    def rehearse(self, stopping: threading.Event) -> bool:
        """The weekly playbooks' rehearsal against this stack; True when one did not hold."""
        playbooks = weekly_playbooks()
        names = ", ".join(p.stem for p in playbooks)
        print(f"\nrehearsal of the weekly playbooks ({names}) ...", flush=True)
        p = self.ports
        env = {
            **self.env,
            "GRAPH_ASK_URL": self.url(p.graph_ask).rstrip("/"),
            "CHAOS_PROXY_URL": self.url(p.chaos_proxy, "/chaos_proxy"),
        }
        journals = self.state / "journals"
        verdicts = rehearse_playbooks(playbooks, journal_dir=journals, env=env, stopping=stopping)
        print(f"\n{verdict_table(verdicts)}", flush=True)
        print(f"journals: {journals}/ (chaos run's own format)", flush=True)
        if chaos_command() is None:
            print("(chaos is not installed: `make setup` installs Chaos Toolkit)", flush=True)
        return not all(v.ok for v in verdicts)

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


# --- the main job: a short rehearsal of the weekly playbooks ------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    """One playbook's rehearsal: Chaos Toolkit's journal status and whether it deviated.

    ``status`` is the journal's (``completed``, ``failed``, ``aborted``, ``interrupted``), or
    ``invalid`` (no journal: ``chaos run`` refused the playbook), ``timeout`` or ``not run``.
    ``steady`` is False when a steady-state check was not met, including the one before the
    method, which Chaos Toolkit 1.19 reports as ``completed``, not deviated, exit code 0.
    """

    playbook: str
    status: str
    deviated: bool
    steady: bool
    exit_code: int | None
    seconds: float
    journal: Path

    @property
    def ok(self) -> bool:
        return self.status == "completed" and not self.deviated and self.steady

    @property
    def label(self) -> str:
        """held, deviated, failed (not held for another reason) or skipped."""
        if self.status == "not run":
            return "skipped"
        if self.ok:
            return "held"
        return "deviated" if self.deviated else "failed"


def weekly_playbooks(directory: Path = PLAYBOOKS_DIR) -> list[Path]:
    """The playbooks tagged ``weekly`` (every ``*.yaml`` when none is tagged), by name."""
    import yaml

    every = sorted(directory.glob("*.yaml"))
    weekly = []
    for path in every:
        try:
            tags = (yaml.safe_load(path.read_text()) or {}).get("tags") or []
        except (OSError, yaml.YAMLError, AttributeError):
            tags = []
        if "weekly" in tags:
            weekly.append(path)
    return weekly or every


def chaos_command() -> str | None:
    """The Chaos Toolkit CLI of this environment (next to this Python first)."""
    beside = Path(sys.executable).with_name("chaos")
    return str(beside) if beside.is_file() else shutil.which("chaos")


def rehearse_playbooks(
    playbooks: Sequence[Path],
    *,
    journal_dir: Path,
    env: Mapping[str, str],
    timeout_s: float = REHEARSAL_TIMEOUT_S,
    stopping: threading.Event | None = None,
) -> list[Verdict]:
    """``chaos run`` each playbook with its short rehearsal setting; one verdict per playbook.

    The hook of ``make run``'s main job. Each run gets ``PLAYBOOK_REHEARSAL=1`` on top of ``env``
    (the stack's URLs) and ``rehearsal/<name>.yaml`` beside the playbook as a var-file when there
    is one, plays its rollbacks whatever happens (the stack is shared), writes its journal to
    ``journal_dir/<name>.json`` and its output to the terminal. ``stopping`` set (by Ctrl-C)
    skips the rest.
    """
    journal_dir.mkdir(parents=True, exist_ok=True)
    chaos = chaos_command()
    verdicts = []
    for path in playbooks:
        journal = journal_dir / f"{path.stem}.json"
        if chaos is None or (stopping is not None and stopping.is_set()):
            verdicts.append(Verdict(path.stem, "not run", False, True, None, 0.0, journal))
            continue
        journal.unlink(missing_ok=True)
        argv = [chaos, "--no-version-check", "--log-file", str(journal.with_suffix(".log"))]
        argv += ["run", "--rollback-strategy", "always", "--journal-path", str(journal)]
        var_file = path.parent / "rehearsal" / path.name
        if var_file.is_file():
            argv += ["--var-file", str(var_file)]
        argv.append(str(path))
        started = time.monotonic()
        try:
            done = subprocess.run(
                argv, env={**env, REHEARSAL_ENV: "1"}, cwd=REPO, timeout=timeout_s, check=False
            )
            code: int | None = done.returncode
        except subprocess.TimeoutExpired:
            code = None
        seconds = time.monotonic() - started
        status, deviated, steady = journal_verdict(journal)
        if code is None:
            status = "timeout"
        verdicts.append(Verdict(path.stem, status, deviated, steady, code, seconds, journal))
    return verdicts


def journal_verdict(journal: Path) -> tuple[str, bool, bool]:
    """``(status, deviated, steady)`` from a Chaos Toolkit journal (``invalid`` without one);
    ``steady`` says every steady-state check that ran was met."""
    try:
        data = json.loads(journal.read_text())
    except (OSError, ValueError):
        return "invalid", False, False
    if not isinstance(data, dict):
        return "invalid", False, False
    checks = data.get("steady_states") or {}
    met = [
        check.get("steady_state_met")
        for check in (checks.get("before"), checks.get("after"), *(checks.get("during") or []))
        if isinstance(check, dict)
    ]
    steady = all(m is not False for m in met)
    return str(data.get("status", "invalid")), bool(data.get("deviated", False)), steady


def verdict_table(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as an aligned text table."""
    rows = [("playbook", "verdict", "status", "exit", "seconds", "journal")]
    for v in verdicts:
        code = "-" if v.exit_code is None else str(v.exit_code)
        rows.append((v.playbook, v.label, v.status, code, f"{v.seconds:.1f}", str(v.journal)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1]
        for r in rows
    )


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
            print(stack.slowest_trace(), flush=True)
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
            stack.start_scheduler()
        rehearse = args.rehearse or (duration is None and not args.no_rehearsal)
        if rehearse and not stopping.is_set():
            # A timed run (CI) fails when a playbook did not hold; an interactive one goes on.
            deviated = stack.rehearse(stopping)
            failed = failed or (deviated and duration is not None)
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
        "--no-rehearsal",
        action="store_true",
        help="skip the rehearsal of the weekly playbooks (an interactive run's main job)",
    )
    parser.add_argument(
        "--rehearse",
        action="store_true",
        help="rehearse the weekly playbooks also with --once (a timed run)",
    )
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
