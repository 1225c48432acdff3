"""Deploy the Cloud Functions (gen2) and the SLO monitor's Cloud Scheduler job with gcloud.

``make deploy`` (``python -m scripts.deploy``) builds every bundle (``scripts.bundle``), then:

1. ``gcloud functions deploy`` chaos_delay, chaos_proxy and slo_monitor from ``build/<name>``;
2. reads slo_monitor's URL (``gcloud functions describe``);
3. creates the scheduler's service account when it is missing, and lets it invoke slo_monitor
   (``gcloud functions add-invoker-policy-binding``: ``roles/run.invoker`` on the service);
4. creates the Cloud Scheduler job (``*/5 * * * *``, OIDC token for the function URL) or, when it
   exists, updates it in place.

``make deploy DRY_RUN=1`` (``--dry-run``) builds the bundles and prints every command, one per
line, without calling gcloud at all. Settings come from the environment or Make variables
(``make deploy GCP_PROJECT=my-proj REGION=asia-northeast3 DRY_RUN=1``):

=================  ===========================================  =================================
variable           meaning                                      default
=================  ===========================================  =================================
GCP_PROJECT        Google Cloud project id                      yago-vibe-spt
REGION             functions and scheduler location             asia-northeast3
RUNTIME            Cloud Functions runtime                      python311
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
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from scripts import bundle
from scripts.catalog import (
    FUNCTIONS,
    REPO,
    SLO_MONITOR,
    THREADS_ENV,
    WORKERS_ENV,
    FunctionSpec,
)

DEFAULT_PROJECT = "yago-vibe-spt"
DEFAULT_REGION = "asia-northeast3"
DEFAULT_RUNTIME = "python311"
DEFAULT_JOB = "slo-monitor-every-5m"
DEFAULT_SCHEDULE = "*/5 * * * *"
SCHEDULER_SA_NAME = "slo-scheduler"
#: Environment passed through to the chaos functions when set at deploy time.
CHAOS_PASSTHROUGH = ("CHAOS_UPSTREAMS",)


class DeployError(RuntimeError):
    """A deploy setting is invalid or a gcloud step failed."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Where and how to deploy; see the module docstring for the environment variables."""

    project: str
    region: str = DEFAULT_REGION
    runtime: str = DEFAULT_RUNTIME
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``); empty values mean default."""
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(name, "").strip() or default

        settings = cls(
            project=get("GCP_PROJECT", DEFAULT_PROJECT),
            region=get("REGION", DEFAULT_REGION),
            runtime=get("RUNTIME", DEFAULT_RUNTIME),
            scheduler_sa=get("SCHEDULER_SA", ""),
            scheduler_job=get("SCHEDULER_JOB", DEFAULT_JOB),
            schedule=get("SLO_SCHEDULE", DEFAULT_SCHEDULE),
            chaos_auth=get("CHAOS_AUTH", "firebase"),
            slack_secret=get("SLACK_SECRET", "slack-webhook-url"),
            functions_sa=get("FUNCTIONS_SA", ""),
            passthrough=tuple(
                (name, env[name]) for name in CHAOS_PASSTHROUGH if env.get(name, "").strip()
            ),
            gcloud=get("GCLOUD", "gcloud"),
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        problems = []
        if not self.runtime.startswith("python3"):
            problems.append(f"RUNTIME must be a python3xx runtime, got {self.runtime!r}")
        if self.functions_sa and "@" not in self.functions_sa:
            problems.append(
                f"FUNCTIONS_SA must be a service account email, got {self.functions_sa!r}"
            )
        if "@" not in self.service_account:
            problems.append(
                f"SCHEDULER_SA must be a service account email, got {self.scheduler_sa!r}"
            )
        if len(self.schedule.split()) != 5:
            problems.append(
                f"SLO_SCHEDULE must be a 5-field cron expression, got {self.schedule!r}"
            )
        # A public function with no caller check would let anyone inject faults once enabled.
        if self.chaos_auth not in {"firebase", "iam"}:
            problems.append(f"CHAOS_AUTH must be firebase or iam, got {self.chaos_auth!r}")
        for name, value in (("GCP_PROJECT", self.project), ("REGION", self.region)):
            if not value or any(c.isspace() for c in value):
                problems.append(f"{name} must be a single word, got {value!r}")
        if problems:
            raise DeployError("; ".join(problems))


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


def deploy_command(spec: FunctionSpec, settings: Settings) -> list[str]:
    """``gcloud functions deploy`` for one HTTP function from its bundle."""
    argv = [
        settings.gcloud,
        "functions",
        "deploy",
        spec.name,
        "--gen2",
        f"--project={settings.project}",
        f"--region={settings.region}",
        f"--runtime={settings.runtime}",
        f"--source=build/{spec.name}",
        f"--entry-point={spec.entry_point}",
        "--trigger-http",
        "--allow-unauthenticated" if is_public(spec, settings) else "--no-allow-unauthenticated",
        f"--memory={spec.memory}",
        f"--cpu={spec.cpu}",
        f"--concurrency={spec.concurrency}",
        f"--timeout={spec.timeout_s}s",
        f"--max-instances={spec.max_instances}",
        _env_flag(function_env(spec, settings)),
    ]
    if settings.functions_sa:
        argv.append(f"--service-account={settings.functions_sa}")
    secret_of = {"SLACK_WEBHOOK_URL": settings.slack_secret}
    secrets = [(env, secret_of.get(env, name)) for env, name in spec.secrets]
    secrets = [(env, name) for env, name in secrets if name != "none"]
    if secrets:
        argv.append("--set-secrets=" + ",".join(f"{env}={name}:latest" for env, name in secrets))
    argv.append("--quiet")
    return argv


def describe_url_command(spec: FunctionSpec, settings: Settings) -> list[str]:
    return [
        settings.gcloud,
        "functions",
        "describe",
        spec.name,
        f"--project={settings.project}",
        f"--region={settings.region}",
        "--format=value(serviceConfig.uri)",
    ]


def invoker_binding_command(spec: FunctionSpec, settings: Settings) -> list[str]:
    return [
        settings.gcloud,
        "functions",
        "add-invoker-policy-binding",
        spec.name,
        f"--project={settings.project}",
        f"--region={settings.region}",
        f"--member=serviceAccount:{settings.service_account}",
    ]


def scheduler_describe_command(settings: Settings) -> list[str]:
    return [
        settings.gcloud,
        "scheduler",
        "jobs",
        "describe",
        settings.scheduler_job,
        f"--project={settings.project}",
        f"--location={settings.region}",
        "--format=value(name)",
    ]


def scheduler_command(verb: str, settings: Settings, url: str) -> list[str]:
    """``gcloud scheduler jobs create|update http`` POSTing to ``url`` with an OIDC token."""
    if verb not in {"create", "update"}:
        raise DeployError(f"verb must be create or update, got {verb!r}")
    return [
        settings.gcloud,
        "scheduler",
        "jobs",
        verb,
        "http",
        settings.scheduler_job,
        f"--project={settings.project}",
        f"--location={settings.region}",
        f"--schedule={settings.schedule}",
        "--time-zone=Etc/UTC",
        f"--uri={url}",
        "--http-method=POST",
        f"--oidc-service-account-email={settings.service_account}",
        f"--oidc-token-audience={url}",
        f"--attempt-deadline={SLO_MONITOR.timeout_s + 60}s",
        # Scheduler retries nothing by default; the monitor answers 503 precisely so that a run
        # whose Firestore write failed is retried within its 5-minute slot.
        "--max-retry-attempts=3",
        "--min-backoff=10s",
        "--max-backoff=60s",
        "--max-retry-duration=240s",
        f"--description=Runs {SLO_MONITOR.name} (SLO checks + Slack alerts)",
    ]


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
        "--display-name=Cloud Scheduler caller of slo_monitor",
    ]
    return describe, create


def predicted_url(spec: FunctionSpec, settings: Settings) -> str:
    """The function's cloudfunctions.net URL, known before it exists (dry runs only)."""
    return f"https://{settings.region}-{settings.project}.cloudfunctions.net/{spec.name}"


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


def deploy(
    settings: Settings,
    runner: Runner,
    functions: Sequence[FunctionSpec] = FUNCTIONS,
    repo: Path = REPO,
) -> None:
    """Build the bundles of ``functions`` under ``repo`` and deploy them; with slo_monitor among
    them, also its invoker binding and scheduler job."""
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
        runner.run(deploy_command(spec, settings))
    if SLO_MONITOR not in functions:
        return
    url = runner.run(describe_url_command(SLO_MONITOR, settings), capture=True)
    if runner.dry:
        url = predicted_url(SLO_MONITOR, settings)
        runner.note(f"a real run uses serviceConfig.uri from the describe above; predicted: {url}")
    elif not url.startswith("https://"):
        raise DeployError(f"cannot read {SLO_MONITOR.name}'s URL (got {url!r})")
    ensure_service_account(settings, runner)
    runner.run(invoker_binding_command(SLO_MONITOR, settings))
    runner.run(scheduler_describe_command(settings), capture=True, check=False)
    if runner.dry:
        runner.note(
            f"a real run creates job {settings.scheduler_job} when the describe above fails and "
            "otherwise runs the same command with `update` instead of `create`"
        )
        runner.run(scheduler_command("create", settings, url))
        return
    runner.run(scheduler_command("update" if runner.last_ok else "create", settings, url))


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Deploy the Cloud Functions and the SLO scheduler job (gcloud)."
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands without calling gcloud"
    )
    parser.add_argument(
        "functions", nargs="*", help="deploy only these functions (default: all three)"
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        names = set(args.functions)
        unknown = names - {s.name for s in FUNCTIONS}
        if unknown:
            valid = ", ".join(s.name for s in FUNCTIONS)
            raise DeployError(f"unknown function(s) {', '.join(sorted(unknown))}: valid: {valid}")
        chosen = [s for s in FUNCTIONS if not names or s.name in names]
        deploy(settings, DryRunner() if args.dry_run else GcloudRunner(), chosen)
    except (DeployError, bundle.BundleError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
