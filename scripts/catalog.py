"""The project's Cloud Functions and the settings they are served and deployed with.

One place for what ``scripts.bundle``, ``scripts.deploy`` and ``scripts.run_local`` must agree on:
the function names, entry points, data files, server threads and Cloud Run sizing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUNCTIONS_DIR = REPO / "functions"
BUILD_DIR = REPO / "build"

#: functions-framework reads these (``functions_framework/_http/gunicorn.py``): one gunicorn
#: worker process, ``THREADS`` request threads. Its default of 4 x CPU threads caps a 300 ms
#: handler at ~26 req/s on a 2-core machine, so the local stack and every deploy set them.
WORKERS_ENV = "WORKERS"
THREADS_ENV = "THREADS"
LOCAL_WORKERS = 1
LOCAL_THREADS = 64


@dataclass(frozen=True, slots=True)
class FunctionSpec:
    """One HTTP Cloud Function: its source, local port and Cloud Run (gen2) sizing."""

    #: Directory under ``functions/``, the deployed function's name and its Python entry point.
    name: str
    #: Port of the function in the local stack (``make run``).
    local_port: int
    #: Repository-relative files the function reads at run time, shipped in its bundle.
    data_files: tuple[str, ...] = ()
    #: ``--allow-unauthenticated`` (the handler authenticates itself) or IAM-only invocation.
    public: bool = False
    #: Maximum concurrent requests per instance (``--concurrency``) and request threads.
    concurrency: int = 80
    #: vCPUs and memory per instance; concurrency above 1 needs at least one full vCPU.
    cpu: str = "1"
    memory: str = "512Mi"
    #: Request timeout (seconds).
    timeout_s: int = 60
    max_instances: int = 10
    #: Instances kept warm (``--min-instances``). Idle ones are billed, so only where a cold start
    #: would distort what the function serves or measures.
    min_instances: int = 0
    #: Minutes between prewarm pings (a Cloud Scheduler GET of ``?prewarm_query``); 0: none.
    prewarm_every_min: int = 0
    #: Query string of the prewarm ping: a request the function answers without side effects.
    prewarm_query: str = ""
    #: Deploy each new revision with no traffic under a tag, then shift traffic in steps.
    blue_green: bool = False
    #: Environment variables set on deploy (never secrets: those go to ``secrets``).
    deploy_env: tuple[tuple[str, str], ...] = ()
    #: ``ENV_NAME -> Secret Manager secret`` mounted as environment variables on deploy.
    secrets: tuple[tuple[str, str], ...] = ()

    @property
    def entry_point(self) -> str:
        return self.name

    @property
    def source_dir(self) -> Path:
        return FUNCTIONS_DIR / self.name

    @property
    def bundle_dir(self) -> Path:
        return BUILD_DIR / self.name

    @property
    def threads(self) -> int:
        """Request threads of the single gunicorn worker: one per admitted concurrent request."""
        return self.concurrency


CHAOS_DELAY = FunctionSpec(
    name="chaos_delay",
    local_port=8081,
    public=True,
    concurrency=64,
    timeout_s=60,
    # Called in bursts by load tests: a ping every 5 minutes is cheaper than an idle instance.
    prewarm_every_min=5,
    prewarm_query="p=0&d=0",
    blue_green=True,
    deploy_env=(("CHAOS_ENABLED", "false"), ("CHAOS_AUTH", "firebase")),
)
CHAOS_PROXY = FunctionSpec(
    name="chaos_proxy",
    local_port=8082,
    public=True,
    concurrency=64,
    timeout_s=60,
    # On the request path of the system under test: a cold start here would read as the
    # dependency's own latency in every experiment.
    min_instances=1,
    blue_green=True,
    deploy_env=(("CHAOS_ENABLED", "false"), ("CHAOS_AUTH", "firebase")),
)
SLO_MONITOR = FunctionSpec(
    name="slo_monitor",
    local_port=8083,
    data_files=("config/slos.yaml",),
    public=False,
    # One run every five minutes: a single instance, one request at a time, so two overlapping
    # scheduler attempts never double-alert.
    concurrency=1,
    max_instances=1,
    timeout_s=120,
    secrets=(("SLACK_WEBHOOK_URL", "slack-webhook-url"),),
)

FUNCTIONS: tuple[FunctionSpec, ...] = (CHAOS_DELAY, CHAOS_PROXY, SLO_MONITOR)


def function(name: str) -> FunctionSpec:
    """The function called ``name``; the error lists the valid names."""
    for spec in FUNCTIONS:
        if spec.name == name:
            return spec
    valid = ", ".join(s.name for s in FUNCTIONS)
    raise KeyError(f"unknown function {name!r}: expected one of {valid}")
