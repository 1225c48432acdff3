"""Deploy the Cloud Functions (gen2) blue/green, their prewarm pings and the SLO monitor's job.

A gen2 function is a Cloud Run service; each deploy adds a revision. ``python -m scripts.deploy``
(``make deploy``) takes one step per call, for the named functions (default: all, or every
blue/green function for the traffic steps)::

    deploy [FUNCTION...]              build the bundles (scripts.bundle) and deploy
    shift --percent N [FUNCTION...]   N% of the traffic to the candidate, the rest to stable
    promote [FUNCTION...]             100% to the candidate, which becomes stable
    rollback [FUNCTION...]            100% back to stable (or to previous, after a promote)

``deploy`` does, per function:

- blue/green functions (the catalog's ``blue_green``): pins the service's traffic to the revision
  serving it now, tagged ``stable``; deploys, so the new revision gets no traffic (Cloud Run keeps
  a pinned split across deploys); tags the new revision ``candidate`` (its own URL,
  ``https://candidate---<service host>``). A function's first deploy serves all traffic and is
  tagged ``stable``. ``promote`` moves ``stable`` to the candidate and ``previous`` to the old
  revision; the next ``deploy`` drops ``previous``.
- the others (slo_monitor, a scheduled job): deploy with all traffic on the new revision;
- ``--min-instances`` from the catalog on every deploy, 0 included, so a lowered setting applies;
- a prewarm Scheduler job per function with ``prewarm_every_min``: a GET of ``?prewarm_query``
  (with an OIDC token when the function is private, since IAM refuses a request before it
  reaches, and warms, an instance);
- slo_monitor: the scheduler's service account, its invoker binding and the ``*/5`` job whose
  retries fit the 5-minute slot (:data:`MONITOR_RETRY`).

``--dry-run`` (``make deploy DRY_RUN=1``) builds the bundles and prints every command, one per
line, without calling gcloud; revisions it cannot know are shown as ``<service>-STABLE`` and
``<service>-NEW``. A dry ``deploy`` also prints the later steps (shift by ``TRAFFIC_STEPS``,
promote, rollback). Settings come from the environment or Make variables
(``make deploy PROJECT=my-proj REGION=asia-northeast3 DRY_RUN=1``):

=================  ===========================================  =================================
variable           meaning                                      default
=================  ===========================================  =================================
PROJECT            Google Cloud project id (or                  none: required (a dry run shows
                   GOOGLE_CLOUD_PROJECT)                        PROJECT_ID)
REGION             functions and scheduler location             asia-northeast3
RUNTIME            Cloud Functions runtime                      python311
TRAFFIC_STEPS      candidate's traffic percentages, in order    10,50,100
SCHEDULER_SA       service account the scheduler signs with     slo-scheduler@<project>.iam...
SCHEDULER_JOB      Cloud Scheduler job name                     slo-monitor-every-5m
SLO_SCHEDULE       cron schedule of the monitor                 */5 * * * *
CHAOS_AUTH         chaos functions' caller check: firebase      firebase
                   (public + ID token) or iam (private)
CHAOS_UPSTREAMS    chaos_proxy's upstream map (passed through)  (unset)
SLACK_SECRET       Secret Manager secret with the Slack URL     slack-webhook-url
                   (``none``: deploy the monitor without Slack)
FUNCTIONS_SA       runtime service account of the functions     (Compute Engine default)
GCLOUD             gcloud executable                            gcloud
=================  ===========================================  =================================
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

from scripts import bundle
from scripts.catalog import (
    FUNCTIONS,
    REPO,
    SLO_MONITOR,
    THREADS_ENV,
    WORKERS_ENV,
    FunctionSpec,
)
from shared.settings import Env, Problem, SettingsError

DEFAULT_REGION: Final = "asia-northeast3"
DEFAULT_RUNTIME: Final = "python311"
DEFAULT_JOB: Final = "slo-monitor-every-5m"
DEFAULT_SCHEDULE: Final = "*/5 * * * *"
DEFAULT_STEPS: Final = (10, 50, 100)
SCHEDULER_SA_NAME: Final = "slo-scheduler"
#: What a dry run deploys to when no project is set; not a valid id, so a copied command fails.
PLACEHOLDER_PROJECT: Final = "PROJECT_ID"
#: Environment passed through to the chaos functions when set at deploy time.
CHAOS_PASSTHROUGH: Final = ("CHAOS_UPSTREAMS",)

#: Traffic tags on a blue/green function's revisions.
STABLE: Final = "stable"
CANDIDATE: Final = "candidate"
PREVIOUS: Final = "previous"

STEPS: Final = ("deploy", "shift", "promote", "rollback")

_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class DeployError(RuntimeError):
    """A deploy step cannot go on: a gcloud step failed or the service is not in a fitting state."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A Cloud Scheduler job's retry settings (seconds).

    Scheduler retries a failed attempt "until both limits are reached" (``attempts`` retries and
    ``duration_s`` since the first attempt), waiting ``min_backoff_s`` first, doubling the wait
    ``max_doublings`` times, then growing it linearly, never beyond ``max_backoff_s``.
    """

    attempts: int
    duration_s: int
    min_backoff_s: int
    max_backoff_s: int
    max_doublings: int
    deadline_s: int

    def flags(self) -> list[str]:
        first = [f"--attempt-deadline={self.deadline_s}s", f"--max-retry-attempts={self.attempts}"]
        if self.attempts == 0:
            return first  # no retry: the backoff settings would mean nothing
        return [
            *first,
            f"--max-retry-duration={self.duration_s}s",
            f"--min-backoff={self.min_backoff_s}s",
            f"--max-backoff={self.max_backoff_s}s",
            f"--max-doublings={self.max_doublings}",
        ]


#: The monitor answers 503 when a run's Firestore write or an SLI read failed, so that Scheduler
#: runs it again within its 5-minute slot, and no later: a retry running into the next run would
#: queue behind it (one instance, one request) and alert from stale data. Worst case, every
#: attempt running to its deadline (135 s), the one retry starts at 150 s and ends by 285 s;
#: quick failures are retried at 15, 45 and 75 s. tests/deploy/test_deploy.py computes the worst
#: case from the printed flags. (3 attempts within 240 s allowed ~6 retries, the last one
#: overlapping the next run.)
MONITOR_RETRY: Final = RetryPolicy(
    attempts=1,
    duration_s=60,
    min_backoff_s=15,
    max_backoff_s=30,
    max_doublings=1,
    deadline_s=SLO_MONITOR.timeout_s + 15,
)
#: A missed prewarm ping is not worth a retry: the next one comes in a few minutes. The deadline
#: covers a cold start.
PREWARM_RETRY: Final = RetryPolicy(
    attempts=0, duration_s=0, min_backoff_s=5, max_backoff_s=5, max_doublings=0, deadline_s=30
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Where and how to deploy; see the module docstring for the environment variables."""

    project: str
    region: str = DEFAULT_REGION
    runtime: str = DEFAULT_RUNTIME
    traffic_steps: tuple[int, ...] = DEFAULT_STEPS
    scheduler_sa: str = ""
    scheduler_job: str = DEFAULT_JOB
    schedule: str = DEFAULT_SCHEDULE
    chaos_auth: str = "firebase"
    slack_secret: str = "slack-webhook-url"
    functions_sa: str = ""
    passthrough: tuple[tuple[str, str], ...] = ()
    gcloud: str = "gcloud"

    @property
    def service_account(self) -> str:
        return self.scheduler_sa or f"{SCHEDULER_SA_NAME}@{self.project}.iam.gserviceaccount.com"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, dry_run: bool = False
    ) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``).

        Raises :class:`SettingsError` naming every bad variable. There is no default project:
        without ``PROJECT`` or ``GOOGLE_CLOUD_PROJECT`` only a dry run goes on (showing
        :data:`PLACEHOLDER_PROJECT`).
        """
        env = Env(environ)
        project = env.text("PROJECT") or env.text("GOOGLE_CLOUD_PROJECT")
        if project is None:
            if not dry_run:
                env.problems.append(
                    Problem(
                        "PROJECT",
                        "",
                        "set to the Google Cloud project to deploy to (make deploy "
                        "PROJECT=my-project, or GOOGLE_CLOUD_PROJECT); there is no default",
                    )
                )
            project = PLACEHOLDER_PROJECT
        else:
            name = "PROJECT" if env.text("PROJECT") else "GOOGLE_CLOUD_PROJECT"
            project = env.parse(
                name, project, _matching(_PROJECT), allowed="a Google Cloud project id"
            )
        settings = cls(
            project=project,
            region=env.parse("REGION", DEFAULT_REGION, _matching(_REGION), allowed="a region"),
            runtime=env.parse(
                "RUNTIME",
                DEFAULT_RUNTIME,
                _matching(re.compile(r"^python3[0-9]+$")),
                allowed="a python3xx runtime",
            ),
            traffic_steps=env.parse(
                "TRAFFIC_STEPS",
                DEFAULT_STEPS,
                parse_steps,
                allowed="increasing percentages from 1 to 100 ending at 100, e.g. 10,50,100",
            ),
            scheduler_sa=env.parse(
                "SCHEDULER_SA", "", _matching(_EMAIL), allowed="a service account email"
            ),
            scheduler_job=env.text("SCHEDULER_JOB", DEFAULT_JOB) or DEFAULT_JOB,
            schedule=env.parse(
                "SLO_SCHEDULE", DEFAULT_SCHEDULE, parse_cron, allowed="a 5-field cron expression"
            ),
            # A public function with no caller check would let anyone inject faults once enabled.
            chaos_auth=env.choice("CHAOS_AUTH", "firebase", ("firebase", "iam")),
            slack_secret=env.text("SLACK_SECRET", "slack-webhook-url") or "slack-webhook-url",
            functions_sa=env.parse(
                "FUNCTIONS_SA", "", _matching(_EMAIL), allowed="a service account email"
            ),
            passthrough=tuple(
                (name, value) for name in CHAOS_PASSTHROUGH if (value := env.text(name)) is not None
            ),
            gcloud=env.text("GCLOUD", "gcloud") or "gcloud",
        )
        env.check()
        return settings


def _matching(pattern: re.Pattern[str]) -> _Matcher:
    return _Matcher(pattern)


@dataclass(frozen=True, slots=True)
class _Matcher:
    pattern: re.Pattern[str]

    def __call__(self, value: str) -> str:
        if not self.pattern.match(value):
            raise ValueError
        return value


def parse_steps(text: str) -> tuple[int, ...]:
    """``"10,50,100"`` -> ``(10, 50, 100)``: increasing, each 1..100, the last 100."""
    steps = tuple(int(part) for part in text.split(","))
    if not steps or steps[-1] != 100 or any(not 1 <= s <= 100 for s in steps):
        raise ValueError
    if any(a >= b for a, b in itertools.pairwise(steps)):
        raise ValueError
    return steps


def parse_cron(text: str) -> str:
    if len(text.split()) != 5:
        raise ValueError
    return text


# --- the commands -----------------------------------------------------------------------------


def _env_flag(pairs: Sequence[tuple[str, str]]) -> str:
    for name, value in pairs:
        if "," in value:
            # gcloud's alternate delimiter syntax: ^@^ switches the list separator to '@'.
            if "@" in value:
                raise DeployError(f"{name}: a value may not contain both ',' and '@'")
            return "--set-env-vars=^@^" + "@".join(f"{k}={v}" for k, v in pairs)
    return "--set-env-vars=" + ",".join(f"{k}={v}" for k, v in pairs)


def function_env(spec: FunctionSpec, settings: Settings) -> list[tuple[str, str]]:
    """The runtime environment ``spec`` is deployed with."""
    env: list[tuple[str, str]] = [
        (WORKERS_ENV, "1"),
        (THREADS_ENV, str(spec.threads)),
        ("GOOGLE_CLOUD_PROJECT", settings.project),
    ]
    for name, value in spec.deploy_env:
        if name == "CHAOS_AUTH":
            value = settings.chaos_auth
        env.append((name, value))
    if spec.name.startswith("chaos_"):
        env.extend(settings.passthrough)
    return env


def is_public(spec: FunctionSpec, settings: Settings) -> bool:
    """Public invokers unless the function is private or the chaos check is IAM itself."""
    if spec.name.startswith("chaos_") and settings.chaos_auth == "iam":
        return False
    return spec.public


def _where(settings: Settings) -> list[str]:
    return [f"--project={settings.project}", f"--region={settings.region}"]


def deploy_command(spec: FunctionSpec, settings: Settings) -> list[str]:
    """``gcloud functions deploy`` for one HTTP function from its bundle."""
    argv = [
        settings.gcloud,
        "functions",
        "deploy",
        spec.name,
        "--gen2",
        *_where(settings),
        f"--runtime={settings.runtime}",
        f"--source=build/{spec.name}",
        f"--entry-point={spec.entry_point}",
        "--trigger-http",
        "--allow-unauthenticated" if is_public(spec, settings) else "--no-allow-unauthenticated",
        f"--memory={spec.memory}",
        f"--cpu={spec.cpu}",
        f"--concurrency={spec.concurrency}",
        f"--timeout={spec.timeout_s}s",
        f"--min-instances={spec.min_instances}",
        f"--max-instances={spec.max_instances}",
        _env_flag(function_env(spec, settings)),
    ]
    if not spec.blue_green:
        # A rollback pins traffic to a revision, and Cloud Run keeps a pin across deploys: a
        # straight deploy must say that its new revision takes the traffic.
        argv.append("--serve-all-traffic-latest-revision")
    if settings.functions_sa:
        argv.append(f"--service-account={settings.functions_sa}")
    secret_of = {"SLACK_WEBHOOK_URL": settings.slack_secret}
    secrets = [(env, secret_of.get(env, name)) for env, name in spec.secrets]
    secrets = [(env, name) for env, name in secrets if name != "none"]
    if secrets:
        argv.append("--set-secrets=" + ",".join(f"{env}={name}:latest" for env, name in secrets))
    argv.append("--quiet")
    return argv


def describe_command(spec: FunctionSpec, settings: Settings, field: str) -> list[str]:
    """``gcloud functions describe`` printing one field (``serviceConfig.uri``, ...)."""
    return [
        settings.gcloud,
        "functions",
        "describe",
        spec.name,
        *_where(settings),
        f"--format=value({field})",
    ]


def describe_url_command(spec: FunctionSpec, settings: Settings) -> list[str]:
    return describe_command(spec, settings, "serviceConfig.uri")


def service_describe_command(service: str, settings: Settings) -> list[str]:
    """``gcloud run services describe`` as JSON: its traffic targets, tags and latest revision."""
    return [
        settings.gcloud,
        "run",
        "services",
        "describe",
        service,
        *_where(settings),
        "--format=json",
    ]


def update_traffic_command(
    service: str,
    settings: Settings,
    *,
    to_revisions: Sequence[tuple[str, int]] = (),
    to_tags: Sequence[tuple[str, int]] = (),
    update_tags: Sequence[tuple[str, str]] = (),
    remove_tags: Sequence[str] = (),
) -> list[str]:
    """``gcloud run services update-traffic``: tags change first, then the traffic split."""
    if to_revisions and to_tags:
        raise DeployError("one traffic split at a time: revisions or tags")
    argv = [settings.gcloud, "run", "services", "update-traffic", service, *_where(settings)]
    if remove_tags:
        argv.append("--remove-tags=" + ",".join(remove_tags))
    if update_tags:
        argv.append("--update-tags=" + ",".join(f"{t}={r}" for t, r in update_tags))
    if to_revisions:
        argv.append("--to-revisions=" + ",".join(f"{r}={p}" for r, p in to_revisions))
    if to_tags:
        argv.append("--to-tags=" + ",".join(f"{t}={p}" for t, p in to_tags))
    return argv


def invoker_binding_command(spec: FunctionSpec, settings: Settings) -> list[str]:
    return [
        settings.gcloud,
        "functions",
        "add-invoker-policy-binding",
        spec.name,
        *_where(settings),
        f"--member=serviceAccount:{settings.service_account}",
    ]


def scheduler_describe_command(settings: Settings, job: str | None = None) -> list[str]:
    return [
        settings.gcloud,
        "scheduler",
        "jobs",
        "describe",
        job or settings.scheduler_job,
        f"--project={settings.project}",
        f"--location={settings.region}",
        "--format=value(name)",
    ]


def _job_command(verb: str, job: str, settings: Settings) -> list[str]:
    if verb not in {"create", "update"}:
        raise DeployError(f"verb must be create or update, got {verb!r}")
    return [
        settings.gcloud,
        "scheduler",
        "jobs",
        verb,
        "http",
        job,
        f"--project={settings.project}",
        f"--location={settings.region}",
    ]


def scheduler_command(verb: str, settings: Settings, url: str) -> list[str]:
    """``gcloud scheduler jobs create|update http`` POSTing to ``url`` with an OIDC token."""
    return [
        *_job_command(verb, settings.scheduler_job, settings),
        f"--schedule={settings.schedule}",
        "--time-zone=Etc/UTC",
        f"--uri={url}",
        "--http-method=POST",
        f"--oidc-service-account-email={settings.service_account}",
        f"--oidc-token-audience={url}",
        *MONITOR_RETRY.flags(),
        f"--description=Runs {SLO_MONITOR.name} (SLO checks + Slack alerts)",
    ]


def prewarm_job(spec: FunctionSpec) -> str:
    return "prewarm-" + spec.name.replace("_", "-")


def prewarm_command(verb: str, spec: FunctionSpec, settings: Settings, url: str) -> list[str]:
    """The job that GETs ``url?prewarm_query`` every ``prewarm_every_min`` minutes."""
    if spec.prewarm_every_min < 1:
        raise DeployError(f"{spec.name} has no prewarm ping (prewarm_every_min is 0)")
    target = f"{url}?{spec.prewarm_query}" if spec.prewarm_query else url
    argv = [
        *_job_command(verb, prewarm_job(spec), settings),
        f"--schedule=*/{spec.prewarm_every_min} * * * *",
        "--time-zone=Etc/UTC",
        f"--uri={target}",
        "--http-method=GET",
        *PREWARM_RETRY.flags(),
        f"--description=Keeps an instance of {spec.name} warm (any answer will do)",
    ]
    if not is_public(spec, settings):
        argv += [
            f"--oidc-service-account-email={settings.service_account}",
            f"--oidc-token-audience={url}",
        ]
    return argv


def service_account_commands(settings: Settings) -> tuple[list[str], list[str]]:
    """``(describe, create)`` for the scheduler's service account."""
    email = settings.service_account
    common = [f"--project={settings.project}"]
    describe = [settings.gcloud, "iam", "service-accounts", "describe", email, *common]
    create = [
        settings.gcloud,
        "iam",
        "service-accounts",
        "create",
        email.split("@", 1)[0],
        *common,
        "--display-name=Cloud Scheduler caller of the functions",
    ]
    return describe, create


def predicted_url(spec: FunctionSpec, settings: Settings) -> str:
    """The function's cloudfunctions.net URL, known before it exists (dry runs only)."""
    return f"https://{settings.region}-{settings.project}.cloudfunctions.net/{spec.name}"


def predicted_service(spec: FunctionSpec) -> str:
    """The Cloud Run service of a gen2 function: its name with ``-`` for ``_`` (dry runs only)."""
    return spec.name.replace("_", "-").lower()


# --- a service's revisions --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Traffic:
    """Who serves a Cloud Run service: percent per revision, tags, the latest ready revision."""

    service: str
    latest: str
    percent: tuple[tuple[str, int], ...] = ()
    tags: tuple[tuple[str, str], ...] = ()

    def tagged(self, tag: str) -> str | None:
        return dict(self.tags).get(tag)

    def share(self, revision: str) -> int:
        return dict(self.percent).get(revision, 0)

    def serving(self) -> str:
        """The revision with the most traffic (the latest one when none has any)."""
        if not self.percent:
            return self.latest
        return max(self.percent, key=lambda item: item[1])[0]

    @classmethod
    def parse(cls, service: str, text: str) -> Traffic:
        """From ``gcloud run services describe --format=json`` (``status.traffic``)."""
        try:
            status = json.loads(text)["status"]
            latest = str(status["latestReadyRevisionName"])
            percent: dict[str, int] = {}
            tags: dict[str, str] = {}
            for target in status.get("traffic", []):
                revision = str(target.get("revisionName") or latest)
                if target.get("percent"):
                    percent[revision] = percent.get(revision, 0) + int(target["percent"])
                if target.get("tag"):
                    tags[str(target["tag"])] = revision
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DeployError(f"cannot read the traffic of service {service}: {exc!r}") from exc
        return cls(service, latest, tuple(percent.items()), tuple(tags.items()))


def dry_traffic(service: str, *, rollout: bool) -> Traffic:
    """What a dry run assumes: ``stable`` serves all; with ``rollout``, a ``candidate`` too."""
    stable, new = f"{service}-STABLE", f"{service}-NEW"
    if not rollout:
        return Traffic(service, stable, ((stable, 100),), ((STABLE, stable),))
    return Traffic(service, new, ((stable, 100),), ((STABLE, stable), (CANDIDATE, new)))


# --- running them -----------------------------------------------------------------------------


class Runner(Protocol):
    """Runs (or only shows) gcloud commands; ``last_ok`` tells whether the last one succeeded."""

    dry: bool
    last_ok: bool

    def run(self, argv: Sequence[str], *, capture: bool = False, check: bool = True) -> str:
        """Run ``argv``; its stdout if ``capture``; raise :class:`DeployError` if ``check``."""
        ...

    def note(self, text: str) -> None:
        """Show a comment line."""
        ...


class DryRunner:
    """Prints each command (``shlex.join``) and notes (``# ...``) instead of running them."""

    dry = True

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.last_ok = True

    def run(self, argv: Sequence[str], *, capture: bool = False, check: bool = True) -> str:
        self.commands.append(list(argv))
        print(shlex.join(argv), flush=True)
        self.last_ok = True
        return ""

    def note(self, text: str) -> None:
        print(f"# {text}", flush=True)


class GcloudRunner:
    """Runs each command with subprocess, echoing it first."""

    dry = False

    def __init__(self) -> None:
        self.last_ok = True

    def run(self, argv: Sequence[str], *, capture: bool = False, check: bool = True) -> str:
        print(f"+ {shlex.join(argv)}", flush=True)
        try:
            done = subprocess.run(
                list(argv),
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if not check else None,
                text=True,
                check=False,
                cwd=REPO,  # --source=build/<name> is relative to the repository root
            )
        except OSError as exc:
            raise DeployError(
                f"cannot run {argv[0]}: {exc} (is the gcloud CLI installed?)"
            ) from exc
        self.last_ok = done.returncode == 0
        if check and not self.last_ok:
            raise DeployError(f"`{shlex.join(argv)}` failed with exit code {done.returncode}")
        return (done.stdout or "").strip() if capture else ""

    def note(self, text: str) -> None:
        print(f"# {text}", flush=True)


def service_of(spec: FunctionSpec, settings: Settings, runner: Runner) -> str | None:
    """The Cloud Run service behind ``spec``; None when the function is not deployed."""
    out = runner.run(
        describe_command(spec, settings, "serviceConfig.service"), capture=True, check=False
    )
    if runner.dry:
        return predicted_service(spec)
    if not runner.last_ok or not out:
        return None
    return out.rsplit("/", 1)[-1]


def traffic_of(service: str, settings: Settings, runner: Runner, *, assume: Traffic) -> Traffic:
    """The service's traffic; a dry run gets ``assume``."""
    out = runner.run(service_describe_command(service, settings), capture=True)
    return assume if runner.dry else Traffic.parse(service, out)


def function_url(spec: FunctionSpec, settings: Settings, runner: Runner) -> str:
    url = runner.run(describe_url_command(spec, settings), capture=True)
    if runner.dry:
        url = predicted_url(spec, settings)
        runner.note(f"a real run uses serviceConfig.uri from the describe above; predicted: {url}")
    elif not url.startswith("https://"):
        raise DeployError(f"cannot read {spec.name}'s URL (got {url!r})")
    return url


def _required_service(spec: FunctionSpec, settings: Settings, runner: Runner) -> str:
    if not spec.blue_green:
        raise DeployError(
            f"{spec.name} is not deployed blue/green (catalog: blue_green=False): "
            "it has no candidate revision to shift, promote or roll back"
        )
    service = service_of(spec, settings, runner)
    if service is None:
        raise DeployError(f"{spec.name} is not deployed in {settings.project}/{settings.region}")
    return service


# --- the steps --------------------------------------------------------------------------------


def deploy(
    settings: Settings,
    runner: Runner,
    functions: Sequence[FunctionSpec] = FUNCTIONS,
    repo: Path = REPO,
) -> None:
    """Build the bundles of ``functions`` under ``repo`` and deploy them (blue/green where the
    catalog says so), their prewarm jobs and, with slo_monitor among them, its scheduler job."""
    runner.note(
        f"project={settings.project} region={settings.region} runtime={settings.runtime} "
        f"scheduler_sa={settings.service_account}"
    )
    for spec in functions:
        built = bundle.build(spec, repo=repo)
        runner.note(
            f"built {built.path.relative_to(repo)} "
            f"({len(built.files)} files; {', '.join(built.requirements)})"
        )
    for spec in functions:
        every = spec.prewarm_every_min
        runner.note(
            f"{spec.name}: {'blue/green' if spec.blue_green else 'all traffic at once'}, "
            f"min-instances {spec.min_instances}, "
            + (f"prewarm ping every {every} min" if every else "no prewarm ping")
        )
        if spec.blue_green:
            deploy_blue_green(spec, settings, runner)
        else:
            runner.run(deploy_command(spec, settings))
    scheduled = [s for s in functions if s.prewarm_every_min or s is SLO_MONITOR]
    if not scheduled:
        return
    urls = {spec.name: function_url(spec, settings, runner) for spec in scheduled}
    if any(not is_public(s, settings) for s in scheduled):
        ensure_service_account(settings, runner)
        for spec in scheduled:
            if not is_public(spec, settings):
                runner.run(invoker_binding_command(spec, settings))
    for spec in scheduled:
        if spec.prewarm_every_min:
            ping = functools.partial(
                prewarm_command, spec=spec, settings=settings, url=urls[spec.name]
            )
            upsert_job(prewarm_job(spec), settings, runner, ping)
    if SLO_MONITOR in functions:
        url = urls[SLO_MONITOR.name]
        monitor = functools.partial(scheduler_command, settings=settings, url=url)
        upsert_job(settings.scheduler_job, settings, runner, monitor)


def deploy_blue_green(spec: FunctionSpec, settings: Settings, runner: Runner) -> None:
    """Deploy ``spec``'s new revision with no traffic, tagged ``candidate``."""
    service = service_of(spec, settings, runner)
    if service is None:
        runner.note(f"{spec.name} is new: its first revision serves all traffic, tagged stable")
        runner.run(deploy_command(spec, settings))
        service = service_of(spec, settings, runner)
        if service is None:
            raise DeployError(f"{spec.name} deployed but `functions describe` names no service")
        first = traffic_of(service, settings, runner, assume=dry_traffic(service, rollout=False))
        runner.run(
            update_traffic_command(
                service,
                settings,
                update_tags=[(STABLE, first.latest)],
                to_revisions=[(first.latest, 100)],
            )
        )
        return
    if runner.dry:
        runner.note(
            f"assuming {service} serves {service}-STABLE (a real run reads it from the describe); "
            f"a function not deployed yet is deployed with all traffic and tagged {STABLE}"
        )
    state = traffic_of(service, settings, runner, assume=dry_traffic(service, rollout=False))
    candidate = state.tagged(CANDIDATE)
    if candidate is not None and state.share(candidate) > 0:
        raise DeployError(
            f"{spec.name}: candidate {candidate} serves {state.share(candidate)}% of the traffic; "
            "promote or roll it back before deploying another"
        )
    stable = state.tagged(STABLE) or state.serving()
    stale = [tag for tag in (CANDIDATE, PREVIOUS) if state.tagged(tag) is not None]
    # Pinned to a named revision, the service keeps this split when the deploy adds a revision.
    pin = update_traffic_command(
        service,
        settings,
        remove_tags=stale,
        update_tags=[(STABLE, stable)],
        to_revisions=[(stable, 100)],
    )
    runner.run(pin)
    runner.run(deploy_command(spec, settings))
    after = traffic_of(service, settings, runner, assume=replace(state, latest=f"{service}-NEW"))
    if after.latest == stable:
        raise DeployError(f"{spec.name}: the deploy made no new revision (latest is {stable})")
    # Pinned again with the tag: deploys through the Cloud Functions API have been reported to
    # move all traffic to the new revision (terraform-provider-google#24130); should one do so,
    # this ends it at once instead of leaving the candidate serving everything.
    tag = update_traffic_command(
        service,
        settings,
        update_tags=[(CANDIDATE, after.latest)],
        to_revisions=[(stable, 100)],
    )
    runner.run(tag)
    runner.note(
        f"{spec.name}: candidate {after.latest} serves no traffic; it answers at its tag URL "
        f"(https://{CANDIDATE}---<service host>); next: make deploy STEP=shift "
        f"PERCENT={settings.traffic_steps[0]}"
    )


def shift(spec: FunctionSpec, percent: int, settings: Settings, runner: Runner) -> None:
    """Send ``percent`` of ``spec``'s traffic to the candidate and the rest to stable."""
    if not 1 <= percent <= 100:
        raise DeployError(f"--percent must be from 1 to 100, got {percent}")
    service = _required_service(spec, settings, runner)
    state = traffic_of(service, settings, runner, assume=dry_traffic(service, rollout=True))
    _need(state, spec, CANDIDATE, "deploy one first (make deploy)")
    _need(state, spec, STABLE, "deploy it again to tag the serving revision")
    split = [(CANDIDATE, percent), (STABLE, 100 - percent)]
    runner.run(update_traffic_command(service, settings, to_tags=split))


def promote(spec: FunctionSpec, settings: Settings, runner: Runner) -> None:
    """All traffic to the candidate, which becomes ``stable``; the old one becomes ``previous``."""
    service = _required_service(spec, settings, runner)
    state = traffic_of(service, settings, runner, assume=dry_traffic(service, rollout=True))
    candidate = _need(state, spec, CANDIDATE, "nothing to promote")
    stable = _need(state, spec, STABLE, "deploy it again to tag the serving revision")
    retag = [(STABLE, candidate), (PREVIOUS, stable)]
    runner.run(
        update_traffic_command(
            service,
            settings,
            remove_tags=[CANDIDATE],
            update_tags=retag,
            to_revisions=[(candidate, 100)],
        )
    )


def rollback(spec: FunctionSpec, settings: Settings, runner: Runner) -> None:
    """All traffic back: to ``stable`` during a rollout, to ``previous`` after a promote."""
    service = _required_service(spec, settings, runner)
    if runner.dry:
        runner.note(
            f"assuming a rollout in progress; after a promote, a real run instead sends all of "
            f"{service}'s traffic to the revision tagged {PREVIOUS} and tags it {STABLE}"
        )
    state = traffic_of(service, settings, runner, assume=dry_traffic(service, rollout=True))
    stable, candidate, previous = (state.tagged(t) for t in (STABLE, CANDIDATE, PREVIOUS))
    if candidate is not None and stable is not None:
        command = update_traffic_command(
            service, settings, remove_tags=[CANDIDATE], to_revisions=[(stable, 100)]
        )
    elif previous is not None:
        command = update_traffic_command(
            service,
            settings,
            remove_tags=[PREVIOUS],
            update_tags=[(STABLE, previous)],
            to_revisions=[(previous, 100)],
        )
    else:
        raise DeployError(
            f"{spec.name}: no revision tagged {CANDIDATE} or {PREVIOUS}: nothing to roll back to"
        )
    runner.run(command)


def _need(state: Traffic, spec: FunctionSpec, tag: str, hint: str) -> str:
    revision = state.tagged(tag)
    if revision is None:
        raise DeployError(f"{spec.name}: no revision is tagged {tag}: {hint}")
    return revision


def plan(
    settings: Settings,
    functions: Sequence[FunctionSpec] = FUNCTIONS,
    repo: Path = REPO,
) -> DryRunner:
    """A dry ``deploy``, then the traffic steps that follow it: shift through
    ``settings.traffic_steps``, promote, and the rollback that undoes them."""
    runner = DryRunner()
    deploy(settings, runner, functions, repo)
    staged = [s for s in functions if s.blue_green]
    if not staged:
        return runner
    names = " ".join(s.name for s in staged)
    for percent in settings.traffic_steps[:-1]:
        runner.note(
            f"--- later, once the candidate holds: make deploy STEP=shift PERCENT={percent}"
        )
        for spec in staged:
            shift(spec, percent, settings, runner)
    runner.note(f"--- then: make deploy STEP=promote (python -m scripts.deploy promote {names})")
    for spec in staged:
        promote(spec, settings, runner)
    runner.note("--- at any step: make deploy STEP=rollback")
    for spec in staged:
        rollback(spec, settings, runner)
    return runner


def upsert_job(
    job: str, settings: Settings, runner: Runner, command: Callable[[str], list[str]]
) -> None:
    """Create the Scheduler job ``job`` when it is missing, else update it in place."""
    runner.run(scheduler_describe_command(settings, job), capture=True, check=False)
    if runner.dry:
        runner.note(
            f"a real run creates job {job} when the describe above fails and otherwise runs the "
            "same command with `update` instead of `create`"
        )
        runner.run(command("create"))
        return
    runner.run(command("update" if runner.last_ok else "create"))


def ensure_service_account(settings: Settings, runner: Runner) -> None:
    """Create the scheduler's service account when it is missing and belongs to the project."""
    describe, create = service_account_commands(settings)
    runner.run([*describe, "--format=value(email)"], capture=True, check=False)
    own = settings.service_account.endswith(f"@{settings.project}.iam.gserviceaccount.com")
    if runner.dry:
        runner.note("a real run creates the service account below only when the describe fails")
        runner.run(create)
    elif not runner.last_ok:
        if not own:
            raise DeployError(
                f"service account {settings.service_account} does not exist or is not readable"
            )
        runner.run(create)


def chosen(step: str, names: Sequence[str]) -> list[FunctionSpec]:
    """The functions a step acts on: those named, else all (deploy) or the blue/green ones."""
    known = {s.name for s in FUNCTIONS}
    unknown = sorted(set(names) - known)
    if unknown:
        valid = ", ".join(s.name for s in FUNCTIONS)
        raise DeployError(f"unknown function(s) {', '.join(unknown)}: valid: {valid}")
    if names:
        return [s for s in FUNCTIONS if s.name in names]
    return [s for s in FUNCTIONS if step == "deploy" or s.blue_green]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.deploy",
        description="Deploy the Cloud Functions blue/green and move their traffic (gcloud).",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands without calling gcloud"
    )
    parser.add_argument(
        "--percent", type=int, help="shift: the candidate's share of the traffic (1-100)"
    )
    parser.add_argument(
        "words",
        nargs="*",
        metavar="[STEP] FUNCTION",
        help=f"a step ({', '.join(STEPS)}; default deploy), then functions (default: all)",
    )
    args = parser.parse_args(argv)
    words: list[str] = args.words
    step = words.pop(0) if words and words[0] in STEPS else "deploy"
    try:
        if (step == "shift") != (args.percent is not None):
            raise DeployError("--percent goes with shift, and shift needs it")
        settings = Settings.from_env(dry_run=args.dry_run)
        functions = chosen(step, words)
        runner: Runner = DryRunner() if args.dry_run else GcloudRunner()
        if step == "deploy" and args.dry_run:
            plan(settings, functions)
        elif step == "deploy":
            deploy(settings, runner, functions)
        for spec in functions if step != "deploy" else ():
            if step == "shift":
                shift(spec, args.percent, settings, runner)
            elif step == "promote":
                promote(spec, settings, runner)
            else:
                rollback(spec, settings, runner)
    except (DeployError, SettingsError, bundle.BundleError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
