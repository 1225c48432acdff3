"""scripts/deploy.py: the gcloud commands `make deploy` runs, parsed back with shlex.

No real gcloud is ever invoked: dry runs must not call it at all (checked with a recording fake on
PATH), and the real-run flow runs against a fake ``gcloud`` executable that logs its argv.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from scripts import deploy
from scripts.catalog import FUNCTIONS, REPO

FAKE_GCLOUD = textwrap.dedent(
    """
    #!{python}
    import json, os, sys
    argv = sys.argv[1:]
    with open(os.environ["FAKE_GCLOUD_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\\n")
    if argv[:2] == ["functions", "describe"]:
        print("https://slo-monitor-abc123-du.a.run.app")
    elif argv[:3] == ["scheduler", "jobs", "describe"]:
        if os.environ.get("FAKE_JOB_EXISTS") != "1":
            print("NOT_FOUND: Job not found.", file=sys.stderr)
            sys.exit(1)
        print("projects/p/locations/r/jobs/j")
    elif argv[:3] == ["iam", "service-accounts", "describe"]:
        if os.environ.get("FAKE_SA_EXISTS") != "1":
            sys.exit(1)
    """
).lstrip()


def flags(argv: list[str]) -> dict[str, str]:
    """``--name=value`` and bare ``--name`` flags of a command (bare ones map to "")."""
    out: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("--"):
            name, _, value = arg.partition("=")
            out[name] = value
    return out


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose three functions are tiny but real, so bundles build."""
    shutil.copy(REPO / "requirements.txt", tmp_path)
    shutil.copy(REPO / ".gcloudignore", tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config/slos.yaml").write_text("slos: []\n")
    for spec in FUNCTIONS:
        src = tmp_path / "functions" / spec.name
        src.mkdir(parents=True)
        (src / "main.py").write_text(
            "import functions_framework\n\n\n@functions_framework.http\n"
            f"def {spec.name}(request):\n    return 'ok'\n"
        )
    return tmp_path


@pytest.fixture
def fake_gcloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``gcloud`` executable on PATH that logs each call; returns the log path."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "gcloud"
    exe.write_text(FAKE_GCLOUD.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "gcloud.log"
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GCLOUD_LOG", str(log))
    return log


def calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def dry_run_commands(
    repo: Path, capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None
) -> list[list[str]]:
    settings = deploy.Settings.from_env(env or {})
    deploy.deploy(settings, deploy.DryRunner(), repo=repo)
    out = capsys.readouterr().out
    return [shlex.split(line) for line in out.splitlines() if line and not line.startswith("#")]


def test_dry_run_deploys_each_function_gen2_from_its_bundle(
    repo: Path, capsys: pytest.CaptureFixture[str], fake_gcloud: Path
) -> None:
    commands = dry_run_commands(repo, capsys, {"GCP_PROJECT": "proj-1"})

    deploys = [c for c in commands if c[1:3] == ["functions", "deploy"]]
    assert [c[3] for c in deploys] == ["chaos_delay", "chaos_proxy", "slo_monitor"]
    for argv in deploys:
        f = flags(argv)
        name = argv[3]
        assert argv[0] == "gcloud"
        assert "--gen2" in f
        assert "--trigger-http" in f
        assert f["--project"] == "proj-1"
        assert f["--region"] == "asia-northeast3"
        assert f["--runtime"] == "python311"
        assert f["--source"] == f"build/{name}"
        assert f["--entry-point"] == name
        assert (repo / f["--source"] / "main.py").is_file()
        assert (repo / f["--source"] / "requirements.txt").is_file()
        env = dict(kv.split("=", 1) for kv in f["--set-env-vars"].split(","))
        assert env["WORKERS"] == "1"
        assert int(env["THREADS"]) == int(f["--concurrency"])
        assert float(f["--cpu"]) >= 1  # concurrency > 1 needs a full vCPU
        assert env["GOOGLE_CLOUD_PROJECT"] == "proj-1"
    assert calls(fake_gcloud) == []  # a dry run never calls gcloud


def test_chaos_functions_are_public_disabled_and_firebase_authenticated(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys)

    for argv in commands:
        if argv[1:3] == ["functions", "deploy"] and argv[3].startswith("chaos_"):
            f = flags(argv)
            env = dict(kv.split("=", 1) for kv in f["--set-env-vars"].split(","))
            assert env["CHAOS_ENABLED"] == "false"
            assert env["CHAOS_AUTH"] == "firebase"
            assert "--allow-unauthenticated" in f
            assert int(f["--concurrency"]) >= 64


def test_slo_monitor_is_private_single_instance_with_slack_secret(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys)

    (argv,) = [c for c in commands if c[1:4] == ["functions", "deploy", "slo_monitor"]]
    f = flags(argv)
    assert "--no-allow-unauthenticated" in f
    assert "--allow-unauthenticated" not in f
    assert f["--max-instances"] == "1"
    assert f["--set-secrets"] == "SLACK_WEBHOOK_URL=slack-webhook-url:latest"
    assert "SLACK_WEBHOOK_URL" not in f["--set-env-vars"]


def test_dry_run_schedules_the_monitor_every_5_minutes_with_oidc(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"GCP_PROJECT": "proj-1", "REGION": "europe-west1", "SCHEDULER_SA": "sa@x.iam.gserv"}
    commands = dry_run_commands(repo, capsys, env)

    (binding,) = [c for c in commands if c[1:3] == ["functions", "add-invoker-policy-binding"]]
    assert binding[3] == "slo_monitor"
    assert flags(binding)["--member"] == "serviceAccount:sa@x.iam.gserv"
    assert flags(binding)["--region"] == "europe-west1"
    (job,) = [c for c in commands if c[1:5] == ["scheduler", "jobs", "create", "http"]]
    f = flags(job)
    url = "https://europe-west1-proj-1.cloudfunctions.net/slo_monitor"
    assert f["--schedule"] == "*/5 * * * *"
    assert f["--uri"] == url
    assert f["--oidc-token-audience"] == url
    assert f["--oidc-service-account-email"] == "sa@x.iam.gserv"
    assert f["--http-method"] == "POST"
    assert f["--max-retry-attempts"] == "3"  # a 503 from the monitor must be retried
    assert f["--max-retry-duration"] == "240s"  # within its 5-minute slot
    assert f["--location"] == "europe-west1"
    # The binding comes after the deploy and before the job.
    kinds = [c[1:3] for c in commands]
    assert kinds.index(["functions", "add-invoker-policy-binding"]) > kinds.index(
        ["functions", "deploy"]
    )
    assert kinds.index(["scheduler", "jobs"]) > kinds.index(
        ["functions", "add-invoker-policy-binding"]
    )


def test_settings_defaults_and_validation() -> None:
    settings = deploy.Settings.from_env({})
    assert (settings.project, settings.region, settings.runtime) == (
        "yago-vibe-spt",
        "asia-northeast3",
        "python311",
    )
    assert settings.service_account == "slo-scheduler@yago-vibe-spt.iam.gserviceaccount.com"
    with pytest.raises(deploy.DeployError, match="RUNTIME must be a python3xx runtime"):
        deploy.Settings.from_env({"RUNTIME": "nodejs20"})
    with pytest.raises(deploy.DeployError, match="SLO_SCHEDULE must be a 5-field cron"):
        deploy.Settings.from_env({"SLO_SCHEDULE": "every 5 minutes please"})


def test_env_values_with_commas_use_gcloud_alternate_delimiter() -> None:
    flag = deploy._env_flag([("A", "1"), ("CHAOS_UPSTREAMS", "a=http://x,b=http://y")])
    assert flag == "--set-env-vars=^@^A=1@CHAOS_UPSTREAMS=a=http://x,b=http://y"


def test_real_run_creates_the_job_when_absent_and_updates_it_when_present(
    repo: Path, fake_gcloud: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = deploy.Settings.from_env({"GCP_PROJECT": "proj-1"})

    deploy.deploy(settings, deploy.GcloudRunner(), repo=repo)
    first = calls(fake_gcloud)
    monkeypatch.setenv("FAKE_JOB_EXISTS", "1")
    monkeypatch.setenv("FAKE_SA_EXISTS", "1")
    deploy.deploy(settings, deploy.GcloudRunner(), repo=repo)
    second = calls(fake_gcloud)[len(first) :]

    run_url = "https://slo-monitor-abc123-du.a.run.app"
    (create,) = [c for c in first if c[:3] == ["scheduler", "jobs", "create"]]
    assert flags(create)["--uri"] == run_url
    assert flags(create)["--oidc-token-audience"] == run_url
    assert any(c[:4] == ["iam", "service-accounts", "create", "slo-scheduler"] for c in first)
    assert not any(c[:3] == ["scheduler", "jobs", "update"] for c in first)
    (update,) = [c for c in second if c[:3] == ["scheduler", "jobs", "update"]]
    assert flags(update)["--uri"] == run_url
    assert not any(c[:3] == ["scheduler", "jobs", "create"] for c in second)
    assert not any(c[:3] == ["iam", "service-accounts", "create"] for c in second)


def test_real_run_stops_at_the_first_failing_command(
    repo: Path, fake_gcloud: Path, tmp_path: Path
) -> None:
    failing = tmp_path / "bin" / "gcloud-fails"
    failing.write_text('#!/bin/sh\necho "$@" >> "$FAKE_GCLOUD_LOG"\nexit 3\n')
    failing.chmod(0o755)
    settings = deploy.Settings.from_env({"GCLOUD": str(failing)})

    with pytest.raises(deploy.DeployError, match="failed with exit code 3"):
        deploy.deploy(settings, deploy.GcloudRunner(), repo=repo)
    assert len(fake_gcloud.read_text().splitlines()) == 1


def test_deploy_dry_run_of_the_repository_prints_commands_without_gcloud(
    fake_gcloud: Path,
) -> None:
    """What `make deploy DRY_RUN=1` runs, on the real functions/ (bundles built into build/)."""
    env = {k: v for k, v in os.environ.items() if k not in {"GCP_PROJECT", "REGION", "GCLOUD"}}
    done = subprocess.run(
        [sys.executable, "-m", "scripts.deploy", "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    commands = [shlex.split(x) for x in done.stdout.splitlines() if x.startswith("gcloud ")]
    assert [c[3] for c in commands if c[1:3] == ["functions", "deploy"]] == [
        s.name for s in FUNCTIONS
    ]
    assert any(c[1:5] == ["scheduler", "jobs", "create", "http"] for c in commands)
    assert calls(fake_gcloud) == []


def test_iam_auth_makes_the_chaos_functions_private(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys, {"CHAOS_AUTH": "iam", "SLACK_SECRET": "none"})

    deploys = {c[3]: flags(c) for c in commands if c[1:3] == ["functions", "deploy"]}
    for name in ("chaos_delay", "chaos_proxy"):
        assert "--no-allow-unauthenticated" in deploys[name]
        assert "CHAOS_AUTH=iam" in deploys[name]["--set-env-vars"]
    assert "--set-secrets" not in deploys["slo_monitor"]
    with pytest.raises(deploy.DeployError, match="CHAOS_AUTH must be firebase or iam"):
        deploy.Settings.from_env({"CHAOS_AUTH": "none"})


def test_functions_service_account_is_set_on_every_deploy(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"FUNCTIONS_SA": "fn@proj-1.iam.gserviceaccount.com"}
    commands = dry_run_commands(repo, capsys, env)

    deploys = [flags(c) for c in commands if c[1:3] == ["functions", "deploy"]]
    assert len(deploys) == 3
    assert all(f["--service-account"] == env["FUNCTIONS_SA"] for f in deploys)
