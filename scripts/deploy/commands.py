"""The gcloud command lines of a deploy, as argv lists: pure functions of the settings."""

from __future__ import annotations

from collections.abc import Sequence

from scripts.catalog import SLO_MONITOR, THREADS_ENV, WORKERS_ENV, FunctionSpec
from scripts.deploy.errors import DeployError
from scripts.deploy.retries import MONITOR_RETRY, PREWARM_RETRY
from scripts.deploy.settings import Settings


def set_env_vars_flag(pairs: Sequence[tuple[str, str]]) -> str:
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
        set_env_vars_flag(function_env(spec, settings)),
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
