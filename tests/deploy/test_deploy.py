"""scripts/deploy/: the gcloud commands `make deploy` runs, parsed back with shlex.

No real project is ever touched: dry runs must not call gcloud at all (checked with a recording
fake on PATH); real runs go to a fake ``gcloud`` that keeps a Cloud Run service's revisions,
traffic and tags in a JSON file, as the traffic documentation describes them (a split pinned to
named revisions survives a deploy; tags change before traffic). The printed flags are checked
against the installed gcloud's own ``--help``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts import catalog, deploy
from scripts.catalog import FUNCTIONS, REPO
from shared.settings import SettingsError

PROJECT = {"PROJECT": "proj-1"}

# A gcloud that logs its argv and models functions, Cloud Run traffic and tags in a JSON file.
FAKE_GCLOUD = textwrap.dedent(
    """
    #!{python}
    import json, os, sys

    argv = sys.argv[1:]
    with open(os.environ["FAKE_GCLOUD_LOG"], "a") as log:
        log.write(json.dumps(argv) + "\\n")
    state_path = os.environ["FAKE_GCLOUD_STATE"]
    state = json.load(open(state_path)) if os.path.exists(state_path) else {{}}
    flags = dict(a[2:].partition("=")[::2] for a in argv if a.startswith("--"))
    words = [a for a in argv if not a.startswith("--")]

    def fail(message):
        print(message, file=sys.stderr)
        sys.exit(1)

    def save():
        with open(state_path, "w") as out:
            json.dump(state, out)

    def service_of(name):
        for fn in state.values():
            if fn["service"] == name:
                return fn
        fail(f"NOT_FOUND: service {{name}}")

    def resolve(fn, target):
        return fn["revisions"][-1] if target.get("latest") else target["revision"]

    def drop_tag(fn, tag):
        kept = []
        for t in fn["traffic"]:
            if t.get("tag") == tag:
                t = {{k: v for k, v in t.items() if k != "tag"}}
                if not t.get("percent"):
                    continue
            kept.append(t)
        fn["traffic"] = kept

    def split(fn, shares):
        if sum(shares.values()) != 100:
            fail("the fake only models splits that add up to 100")
        for revision in shares:
            if revision not in fn["revisions"]:
                fail(f"NOT_FOUND: revision {{revision}}")
        fn["traffic"] = [dict(t, percent=0) for t in fn["traffic"] if t.get("tag")]
        for revision, percent in shares.items():
            fn["traffic"].append({{"revision": revision, "percent": percent}})

    if words[:2] == ["functions", "describe"]:
        if os.environ.get("FAKE_DESCRIBE_DENIED"):
            fail("ERROR: (gcloud.functions.describe) PERMISSION_DENIED: Permission denied")
        fn = state.get(words[2]) or fail("ERROR: (gcloud.functions.describe) NOT_FOUND: function")
        if "serviceConfig.uri" in flags["format"]:
            print(f"https://{{fn['service']}}-abc123-du.a.run.app")
        else:
            print(f"projects/p/locations/r/services/{{fn['service']}}")
    elif words[:2] == ["functions", "deploy"]:
        name = words[2]
        fn = state.setdefault(name, {{
            "service": name.replace("_", "-"), "revisions": [],
            "traffic": [{{"latest": True, "percent": 100}}], "min": []}})
        fn["revisions"].append(f"{{fn['service']}}-{{len(fn['revisions']) + 1:05d}}-x")
        fn["min"].append(flags.get("min-instances"))
        if "serve-all-traffic-latest-revision" in flags or os.environ.get("FAKE_DEPLOY_MOVES"):
            fn["traffic"] = [dict(t, percent=0) for t in fn["traffic"] if t.get("tag")]
            fn["traffic"].append({{"latest": True, "percent": 100}})
        save()
    elif words[:3] == ["run", "services", "describe"]:
        fn = service_of(words[3])
        traffic = [
            {{"revisionName": resolve(fn, t), "percent": t.get("percent", 0),
              "latestRevision": bool(t.get("latest")),
              **({{"tag": t["tag"]}} if "tag" in t else {{}})}}
            for t in fn["traffic"]
        ]
        status = {{"latestReadyRevisionName": fn["revisions"][-1], "traffic": traffic}}
        print(json.dumps({{"status": status}}))
    elif words[:3] == ["run", "services", "update-traffic"]:
        fn = service_of(words[3])
        for tag in filter(None, flags.get("remove-tags", "").split(",")):
            drop_tag(fn, tag)
        for pair in filter(None, flags.get("update-tags", "").split(",")):
            tag, revision = pair.split("=")
            if revision not in fn["revisions"]:
                fail(f"NOT_FOUND: revision {{revision}}")
            drop_tag(fn, tag)
            fn["traffic"].append({{"revision": revision, "percent": 0, "tag": tag}})
        if "to-revisions" in flags:
            assigned = (x.split("=") for x in flags["to-revisions"].split(","))
            split(fn, {{r: int(p) for r, p in assigned}})
        if "to-tags" in flags:
            tags = {{t["tag"]: resolve(fn, t) for t in fn["traffic"] if t.get("tag")}}
            shares = {{}}
            for tag, percent in (x.split("=") for x in flags["to-tags"].split(",")):
                revision = tags.get(tag) or fail(f"no revision is tagged {{tag}}")
                shares[revision] = shares.get(revision, 0) + int(percent)
            split(fn, shares)
        save()
    elif words[:3] == ["scheduler", "jobs", "describe"]:
        if os.environ.get("FAKE_JOB_EXISTS") != "1":
            fail("NOT_FOUND: Job not found.")
        print("projects/p/locations/r/jobs/j")
    elif words[:3] == ["iam", "service-accounts", "describe"]:
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


def pairs(value: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in value.split(","))


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


@dataclass
class FakeGcloud:
    log: Path
    state: Path

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def function(self, name: str) -> dict[str, object]:
        return dict(json.loads(self.state.read_text())[name])

    def traffic(self, name: str) -> dict[str, int]:
        """``{revision: percent}`` of the revisions serving ``name``."""
        fn = self.function(name)
        revisions = list(fn["revisions"])  # type: ignore[call-overload]
        out: dict[str, int] = {}
        for t in fn["traffic"]:  # type: ignore[attr-defined]
            if t.get("percent"):
                revision = revisions[-1] if t.get("latest") else t["revision"]
                out[revision] = out.get(revision, 0) + t["percent"]
        return out

    def tags(self, name: str) -> dict[str, str]:
        fn = self.function(name)
        return {t["tag"]: t["revision"] for t in fn["traffic"] if t.get("tag")}  # type: ignore[attr-defined]


@pytest.fixture
def fake_gcloud(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGcloud:
    """A ``gcloud`` executable on PATH that logs each call and keeps the services' state."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "gcloud"
    exe.write_text(FAKE_GCLOUD.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    fake = FakeGcloud(tmp_path / "gcloud.log", tmp_path / "gcloud-state.json")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GCLOUD_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_GCLOUD_STATE", str(fake.state))
    monkeypatch.delenv("FAKE_DEPLOY_MOVES", raising=False)
    monkeypatch.delenv("FAKE_DESCRIBE_DENIED", raising=False)
    return fake


def created_jobs(commands: list[list[str]]) -> dict[str, dict[str, str]]:
    """``{job: flags}`` of the ``scheduler jobs create http`` commands."""
    return {c[5]: flags(c) for c in commands if c[1:5] == ["scheduler", "jobs", "create", "http"]}


def printed(out: str) -> list[list[str]]:
    return [shlex.split(line) for line in out.splitlines() if line and not line.startswith("#")]


def dry_run_commands(
    repo: Path, capsys: pytest.CaptureFixture[str], env: dict[str, str] | None = None
) -> list[list[str]]:
    """The commands of a dry ``deploy`` (without the later traffic steps)."""
    settings = deploy.Settings.from_env({**PROJECT, **(env or {})})
    deploy.deploy(settings, deploy.DryRunner(), repo=repo)
    return printed(capsys.readouterr().out)


def plan_commands(repo: Path, capsys: pytest.CaptureFixture[str]) -> list[list[str]]:
    """Everything `make deploy DRY_RUN=1` prints: the deploy and the traffic steps after it."""
    deploy.plan(deploy.Settings.from_env(PROJECT), repo=repo)
    return printed(capsys.readouterr().out)


def real(step: str, fake: FakeGcloud, repo: Path, *names: str, percent: int = 0) -> None:
    """Run one step against the fake gcloud, as ``python -m scripts.deploy`` would."""
    settings = deploy.Settings.from_env(PROJECT)
    runner = deploy.GcloudRunner()
    functions = deploy.chosen(step, list(names))
    if step == "deploy":
        deploy.deploy(settings, runner, functions, repo=repo)
    for spec in functions if step != "deploy" else []:
        if step == "shift":
            deploy.shift(spec, percent, settings, runner)
        elif step == "promote":
            deploy.promote(spec, settings, runner)
        else:
            deploy.rollback(spec, settings, runner)


# --- what a deploy is made of ------------------------------------------------------------------


def test_dry_run_deploys_each_function_gen2_from_its_bundle(
    repo: Path, capsys: pytest.CaptureFixture[str], fake_gcloud: FakeGcloud
) -> None:
    commands = dry_run_commands(repo, capsys)

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
        env = pairs(f["--set-env-vars"])
        assert env["WORKERS"] == "1"
        assert int(env["THREADS"]) == int(f["--concurrency"])
        assert float(f["--cpu"]) >= 1  # concurrency > 1 needs a full vCPU
        assert env["GOOGLE_CLOUD_PROJECT"] == "proj-1"
        assert f["--min-instances"] == str(catalog.function(name).min_instances)
    assert fake_gcloud.calls() == []  # a dry run never calls gcloud


def test_min_instances_come_from_the_catalog_and_zero_is_said_explicitly(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys)

    minimum = {
        c[3]: flags(c)["--min-instances"] for c in commands if c[1:3] == ["functions", "deploy"]
    }
    assert minimum == {"chaos_delay": "0", "chaos_proxy": "1", "slo_monitor": "0"}


def test_chaos_functions_are_public_disabled_and_firebase_authenticated(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys)

    for argv in commands:
        if argv[1:3] == ["functions", "deploy"] and argv[3].startswith("chaos_"):
            f = flags(argv)
            env = pairs(f["--set-env-vars"])
            assert env["CHAOS_ENABLED"] == "false"
            assert env["CHAOS_AUTH"] == "firebase"
            assert "--allow-unauthenticated" in f
            assert int(f["--concurrency"]) >= 64


def test_slo_monitor_is_private_single_instance_with_slack_secret_and_all_traffic(
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
    # Not blue/green: a pin left by some rollback must not hold its new revision back.
    assert "--serve-all-traffic-latest-revision" in f
    blue_green = [
        c for c in commands if c[1:3] == ["functions", "deploy"] and c[3] != "slo_monitor"
    ]
    assert all("--serve-all-traffic-latest-revision" not in flags(c) for c in blue_green)


def test_dry_run_schedules_the_monitor_every_5_minutes_with_oidc(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"REGION": "europe-west1", "SCHEDULER_SA": "sa@x.iam.gserv"}
    commands = dry_run_commands(repo, capsys, env)

    (binding,) = [c for c in commands if c[1:3] == ["functions", "add-invoker-policy-binding"]]
    assert binding[3] == "slo_monitor"
    assert flags(binding)["--member"] == "serviceAccount:sa@x.iam.gserv"
    assert flags(binding)["--region"] == "europe-west1"
    f = created_jobs(commands)["slo-monitor-every-5m"]
    url = "https://europe-west1-proj-1.cloudfunctions.net/slo_monitor"
    assert f["--schedule"] == "*/5 * * * *"
    assert f["--uri"] == url
    assert f["--oidc-token-audience"] == url
    assert f["--oidc-service-account-email"] == "sa@x.iam.gserv"
    assert f["--http-method"] == "POST"
    assert int(f["--max-retry-attempts"]) >= 1  # a 503 from the monitor must be retried
    assert f["--location"] == "europe-west1"
    # The binding comes after the deploy and before the job.
    kinds = [c[1:3] for c in commands]
    assert kinds.index(["functions", "add-invoker-policy-binding"]) > kinds.index(
        ["functions", "deploy"]
    )
    assert kinds.index(["scheduler", "jobs"]) > kinds.index(
        ["functions", "add-invoker-policy-binding"]
    )


# --- the monitor's retries fit its slot -------------------------------------------------------


def seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)s", value)
    assert match, f"expected a duration in seconds, got {value!r}"
    return int(match.group(1))


def retry_schedule(job: dict[str, str]) -> tuple[int, int]:
    """``(latest retry start, latest retry end)`` in seconds after a run's first attempt, over
    every way its attempts can fail (each one answering at once or up to its deadline).

    Cloud Scheduler's RetryConfig: retries go on "until both limits are reached" (the retry
    count and the duration since the first attempt; a duration of 0 means unlimited); the n-th
    wait is min_backoff doubled n times up to max_doublings, then growing linearly by
    min_backoff * 2**max_doublings, never above max_backoff. Times are whole seconds.
    """
    attempts = int(job.get("--max-retry-attempts", "0"))
    duration = seconds(job.get("--max-retry-duration", "0s"))
    low, high = seconds(job.get("--min-backoff", "5s")), seconds(job.get("--max-backoff", "3600s"))
    doublings = int(job.get("--max-doublings", "5"))
    deadline = seconds(job["--attempt-deadline"])
    assert attempts == 0 or duration > 0, "a duration of 0 with retries means retry forever"

    def wait(n: int) -> int:
        grown = low << n if n <= doublings else (low << doublings) * (n - doublings + 1)
        return min(grown, high)

    latest_start = latest_end = 0
    # (retries so far, when the last attempt failed): every reachable state, to a fixed point.
    frontier = {(0, t) for t in range(deadline + 1)}
    latest_end = deadline
    while frontier:
        following: set[tuple[int, int]] = set()
        for done, failed_at in frontier:
            if done >= attempts and failed_at >= duration:
                continue  # both limits reached
            start = failed_at + wait(done)
            assert done < 50, "retries never stop"
            latest_start = max(latest_start, start)
            latest_end = max(latest_end, start + deadline)
            following.update((done + 1, start + d) for d in range(deadline + 1))
        frontier = following
    return latest_start, latest_end


def test_worst_case_retries_of_the_monitor_end_before_its_next_run(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys)
    job = created_jobs(commands)["slo-monitor-every-5m"]

    latest_start, latest_end = retry_schedule(job)

    slot = 300  # */5 * * * *
    assert latest_start > 0  # a failed run is retried
    assert latest_end <= slot - 10, (latest_start, latest_end)
    assert latest_start <= slot // 2
    # The attempt deadline covers the function's own timeout: Scheduler never gives up on an
    # attempt that is still running (and would be retried beside itself).
    assert seconds(job["--attempt-deadline"]) > catalog.SLO_MONITOR.timeout_s
    assert (latest_start, latest_end) == (150, 285)  # the figures the module comment states


def test_the_schedule_check_rejects_the_old_retry_settings() -> None:
    """3 attempts within 240 s: ~6 retries, the last one overlapping the next run."""
    old = {
        "--max-retry-attempts": "3",
        "--max-retry-duration": "240s",
        "--min-backoff": "10s",
        "--max-backoff": "60s",
        "--attempt-deadline": "180s",
    }
    latest_start, latest_end = retry_schedule(old)
    assert latest_start > 300 - 10 or latest_end > 300 - 10
    fast = {**old, "--attempt-deadline": "1s"}  # even when every attempt fails at once
    assert retry_schedule(fast)[0] >= 240


# --- prewarm pings ----------------------------------------------------------------------------


def test_prewarm_job_gets_each_prewarmed_function_without_retries(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys)

    jobs = created_jobs(commands)
    prewarmed = [s for s in FUNCTIONS if s.prewarm_every_min]
    assert prewarmed, "the catalog prewarms at least one function"
    for spec in prewarmed:
        f = jobs[deploy.prewarm_job(spec)]
        base = f"https://asia-northeast3-proj-1.cloudfunctions.net/{spec.name}"
        assert f["--uri"] == f"{base}?{spec.prewarm_query}"
        assert f["--http-method"] == "GET"
        assert f["--schedule"] == f"*/{spec.prewarm_every_min} * * * *"
        assert f["--max-retry-attempts"] == "0"
        assert seconds(f["--attempt-deadline"]) >= 15  # room for the cold start it prevents
        assert "--oidc-service-account-email" not in f  # public: the ping reaches the instance
    assert set(jobs) == {deploy.prewarm_job(s) for s in prewarmed} | {"slo-monitor-every-5m"}


def test_a_private_function_is_pinged_with_an_oidc_token_the_scheduler_may_use(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """IAM refuses a request without a token before any instance starts: nothing would warm."""
    commands = dry_run_commands(repo, capsys, {"CHAOS_AUTH": "iam"})

    ping = created_jobs(commands)["prewarm-chaos-delay"]
    assert ping["--oidc-token-audience"] == (
        "https://asia-northeast3-proj-1.cloudfunctions.net/chaos_delay"
    )
    bound = {c[3] for c in commands if c[1:3] == ["functions", "add-invoker-policy-binding"]}
    assert bound == {"chaos_delay", "slo_monitor"}


# --- settings ---------------------------------------------------------------------------------


def test_no_project_is_an_error_naming_the_variable() -> None:
    with pytest.raises(SettingsError, match=r"PROJECT=''.*GOOGLE_CLOUD_PROJECT.*no default"):
        deploy.Settings.from_env({})
    assert deploy.Settings.from_env({"GOOGLE_CLOUD_PROJECT": "from-env"}).project == "from-env"
    both = {"PROJECT": "chosen", "GOOGLE_CLOUD_PROJECT": "ambient"}
    assert deploy.Settings.from_env(both).project == "chosen"
    # A dry run shows the plan with a placeholder that no gcloud call would accept.
    assert deploy.Settings.from_env({}, dry_run=True).project == "PROJECT_ID"


def test_make_deploy_without_a_project_stops_before_building_or_calling_gcloud(
    fake_gcloud: FakeGcloud, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"PROJECT", "GOOGLE_CLOUD_PROJECT"}}
    done = subprocess.run(
        [sys.executable, "-m", "scripts.deploy"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "PROJECT=" in done.stderr
    assert "GOOGLE_CLOUD_PROJECT" in done.stderr
    assert fake_gcloud.calls() == []


def test_no_real_project_id_is_written_into_the_deploy() -> None:
    paths = [
        *(REPO / "scripts/deploy").glob("*.py"),
        *(REPO / p for p in ("Makefile", "README.md")),
    ]
    for path in [*paths, REPO / "scripts/catalog.py"]:
        assert "yago-vibe-spt" not in path.read_text(), path
    assert len(paths) > 5


def test_settings_validation_names_every_bad_variable() -> None:
    bad = {
        **PROJECT,
        "RUNTIME": "nodejs20",
        "SLO_SCHEDULE": "every 5 minutes please",
        "TRAFFIC_STEPS": "50,10,100",
        "CHAOS_AUTH": "none",
        "REGION": "asia northeast3",
    }
    with pytest.raises(SettingsError) as raised:
        deploy.Settings.from_env(bad)
    named = {p.name for p in raised.value.problems}
    assert named == {"RUNTIME", "SLO_SCHEDULE", "TRAFFIC_STEPS", "CHAOS_AUTH", "REGION"}
    assert "python3xx runtime" in str(raised.value)
    assert "one of firebase, iam" in str(raised.value)
    settings = deploy.Settings.from_env({**PROJECT, "TRAFFIC_STEPS": "5,25,100"})
    assert settings.traffic_steps == (5, 25, 100)
    assert (settings.region, settings.runtime) == ("asia-northeast3", "python311")
    assert settings.service_account == "slo-scheduler@proj-1.iam.gserviceaccount.com"


def test_env_values_with_commas_use_gcloud_alternate_delimiter() -> None:
    flag = deploy.set_env_vars_flag([("A", "1"), ("CHAOS_UPSTREAMS", "a=http://x,b=http://y")])
    assert flag == "--set-env-vars=^@^A=1@CHAOS_UPSTREAMS=a=http://x,b=http://y"


def test_iam_auth_makes_the_chaos_functions_private(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys, {"CHAOS_AUTH": "iam", "SLACK_SECRET": "none"})

    deploys = {c[3]: flags(c) for c in commands if c[1:3] == ["functions", "deploy"]}
    for name in ("chaos_delay", "chaos_proxy"):
        assert "--no-allow-unauthenticated" in deploys[name]
        assert "CHAOS_AUTH=iam" in deploys[name]["--set-env-vars"]
    assert "--set-secrets" not in deploys["slo_monitor"]


def test_functions_service_account_is_set_on_every_deploy(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env = {"FUNCTIONS_SA": "fn@proj-1.iam.gserviceaccount.com"}
    commands = dry_run_commands(repo, capsys, env)

    deploys = [flags(c) for c in commands if c[1:3] == ["functions", "deploy"]]
    assert len(deploys) == 3
    assert all(f["--service-account"] == env["FUNCTIONS_SA"] for f in deploys)


# --- blue/green -------------------------------------------------------------------------------


def test_dry_run_pins_stable_deploys_then_tags_the_candidate(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = dry_run_commands(repo, capsys)

    for spec in (s for s in FUNCTIONS if s.blue_green):
        service = deploy.predicted_service(spec)
        mine = [c for c in commands if service in c or spec.name in c]
        steps = [c[1:4] for c in mine if c[1:3] in (["run", "services"], ["functions", "deploy"])]
        assert steps == [
            ["run", "services", "describe"],
            ["run", "services", "update-traffic"],
            ["functions", "deploy", spec.name],
            ["run", "services", "describe"],
            ["run", "services", "update-traffic"],
        ]
        pin, tag = [flags(c) for c in mine if c[1:4] == ["run", "services", "update-traffic"]]
        assert pin["--to-revisions"] == f"{service}-STABLE=100"
        assert pin["--update-tags"] == f"stable={service}-STABLE"
        assert tag["--update-tags"] == f"candidate={service}-NEW"
        assert tag["--to-revisions"] == f"{service}-STABLE=100"  # the candidate gets no traffic


def test_plan_shows_the_traffic_steps_promote_and_rollback(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    commands = plan_commands(repo, capsys)

    splits = [(c[4], flags(c)) for c in commands if c[1:4] == ["run", "services", "update-traffic"]]
    for spec in (s for s in FUNCTIONS if s.blue_green):
        service = deploy.predicted_service(spec)
        mine = [f for name, f in splits if name == service]
        shifts = [pairs(f["--to-tags"]) for f in mine if "--to-tags" in f]
        assert shifts == [
            {"candidate": "10", "stable": "90"},
            {"candidate": "50", "stable": "50"},
        ]
        promote, rollback = mine[-2:]
        assert promote["--to-revisions"] == f"{service}-NEW=100"
        assert pairs(promote["--update-tags"]) == {
            "stable": f"{service}-NEW",
            "previous": f"{service}-STABLE",
        }
        assert promote["--remove-tags"] == "candidate"
        assert rollback["--to-revisions"] == f"{service}-STABLE=100"
    assert not [n for n, _ in splits if n == "slo-monitor"]  # not blue/green


def test_blue_green_cycle_against_a_stateful_gcloud(repo: Path, fake_gcloud: FakeGcloud) -> None:
    """First deploy serves at once; the next waits at 0% until shifted, promoted, rolled back."""
    real("deploy", fake_gcloud, repo, "chaos_proxy")
    assert fake_gcloud.traffic("chaos_proxy") == {"chaos-proxy-00001-x": 100}
    assert fake_gcloud.tags("chaos_proxy") == {"stable": "chaos-proxy-00001-x"}

    real("deploy", fake_gcloud, repo, "chaos_proxy")
    assert fake_gcloud.traffic("chaos_proxy") == {"chaos-proxy-00001-x": 100}
    assert fake_gcloud.tags("chaos_proxy") == {
        "stable": "chaos-proxy-00001-x",
        "candidate": "chaos-proxy-00002-x",
    }
    assert fake_gcloud.function("chaos_proxy")["min"] == ["1", "1"]

    for percent in (10, 50):
        real("shift", fake_gcloud, repo, "chaos_proxy", percent=percent)
        assert fake_gcloud.traffic("chaos_proxy") == {
            "chaos-proxy-00001-x": 100 - percent,
            "chaos-proxy-00002-x": percent,
        }
    with pytest.raises(deploy.DeployError, match=r"serves 50%.*promote or roll it back"):
        real("deploy", fake_gcloud, repo, "chaos_proxy")

    real("promote", fake_gcloud, repo, "chaos_proxy")
    assert fake_gcloud.traffic("chaos_proxy") == {"chaos-proxy-00002-x": 100}
    assert fake_gcloud.tags("chaos_proxy") == {
        "stable": "chaos-proxy-00002-x",
        "previous": "chaos-proxy-00001-x",
    }

    real("rollback", fake_gcloud, repo, "chaos_proxy")  # after a promote: to previous
    assert fake_gcloud.traffic("chaos_proxy") == {"chaos-proxy-00001-x": 100}
    assert fake_gcloud.tags("chaos_proxy") == {"stable": "chaos-proxy-00001-x"}
    with pytest.raises(deploy.DeployError, match="nothing to roll back to"):
        real("rollback", fake_gcloud, repo, "chaos_proxy")

    real("deploy", fake_gcloud, repo, "chaos_proxy")  # the pin holds across the rollback
    real("shift", fake_gcloud, repo, "chaos_proxy", percent=10)
    real("rollback", fake_gcloud, repo, "chaos_proxy")  # during a rollout: to stable
    assert fake_gcloud.traffic("chaos_proxy") == {"chaos-proxy-00001-x": 100}
    assert fake_gcloud.tags("chaos_proxy") == {"stable": "chaos-proxy-00001-x"}


def test_a_deploy_that_moves_traffic_to_the_new_revision_is_pinned_back(
    repo: Path, fake_gcloud: FakeGcloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    real("deploy", fake_gcloud, repo, "chaos_delay")
    monkeypatch.setenv("FAKE_DEPLOY_MOVES", "1")

    real("deploy", fake_gcloud, repo, "chaos_delay")

    assert fake_gcloud.traffic("chaos_delay") == {"chaos-delay-00001-x": 100}
    assert fake_gcloud.tags("chaos_delay")["candidate"] == "chaos-delay-00002-x"


def test_a_describe_that_fails_for_another_reason_than_not_found_stops_the_deploy(
    repo: Path, fake_gcloud: FakeGcloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taken for a first deploy, it would give the new revision all traffic at once."""
    real("deploy", fake_gcloud, repo, "chaos_delay")
    monkeypatch.setenv("FAKE_DESCRIBE_DENIED", "1")

    with pytest.raises(deploy.DeployError, match="cannot tell whether chaos_delay is deployed"):
        real("deploy", fake_gcloud, repo, "chaos_delay")
    assert len(fake_gcloud.function("chaos_delay")["revisions"]) == 1  # type: ignore[arg-type]


def test_traffic_steps_refuse_what_has_no_candidate(repo: Path, fake_gcloud: FakeGcloud) -> None:
    with pytest.raises(deploy.DeployError, match="chaos_delay is not deployed"):
        real("shift", fake_gcloud, repo, "chaos_delay", percent=10)
    real("deploy", fake_gcloud, repo, "chaos_delay")
    with pytest.raises(deploy.DeployError, match="no revision is tagged candidate"):
        real("promote", fake_gcloud, repo, "chaos_delay")
    with pytest.raises(deploy.DeployError, match="slo_monitor is not deployed blue/green"):
        real("shift", fake_gcloud, repo, "slo_monitor", percent=10)
    with pytest.raises(deploy.DeployError, match="from 1 to 100"):
        deploy.shift(catalog.CHAOS_DELAY, 0, deploy.Settings.from_env(PROJECT), deploy.DryRunner())


def test_straight_deploy_of_the_monitor_and_its_jobs_against_gcloud(
    repo: Path, fake_gcloud: FakeGcloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    real("deploy", fake_gcloud, repo)
    first = fake_gcloud.calls()
    monkeypatch.setenv("FAKE_JOB_EXISTS", "1")
    monkeypatch.setenv("FAKE_SA_EXISTS", "1")
    real("deploy", fake_gcloud, repo, "slo_monitor", "chaos_delay")
    second = fake_gcloud.calls()[len(first) :]

    run_url = "https://slo-monitor-abc123-du.a.run.app"
    created = {c[4]: c for c in first if c[:3] == ["scheduler", "jobs", "create"]}
    create, ping = created["slo-monitor-every-5m"], created["prewarm-chaos-delay"]
    assert flags(create)["--uri"] == run_url
    assert flags(create)["--oidc-token-audience"] == run_url
    assert flags(ping)["--uri"] == "https://chaos-delay-abc123-du.a.run.app?p=0&d=0"
    assert any(c[:4] == ["iam", "service-accounts", "create", "slo-scheduler"] for c in first)
    assert not any(c[:3] == ["scheduler", "jobs", "update"] for c in first)
    updated = {c[4] for c in second if c[:3] == ["scheduler", "jobs", "update"]}
    assert updated == {"slo-monitor-every-5m", "prewarm-chaos-delay"}
    assert not any(c[:3] == ["scheduler", "jobs", "create"] for c in second)
    assert not any(c[:3] == ["iam", "service-accounts", "create"] for c in second)
    assert fake_gcloud.traffic("slo_monitor") == {"slo-monitor-00002-x": 100}


def test_real_run_stops_at_the_first_failing_command(
    repo: Path, fake_gcloud: FakeGcloud, tmp_path: Path
) -> None:
    failing = tmp_path / "bin" / "gcloud-fails"
    failing.write_text('#!/bin/sh\necho "$@" >> "$FAKE_GCLOUD_LOG"\nexit 3\n')
    failing.chmod(0o755)
    settings = deploy.Settings.from_env({**PROJECT, "GCLOUD": str(failing)})

    with pytest.raises(deploy.DeployError, match="failed with exit code 3"):
        deploy.deploy(settings, deploy.GcloudRunner(), [catalog.SLO_MONITOR], repo=repo)
    assert len(fake_gcloud.log.read_text().splitlines()) == 1


def test_traffic_is_read_from_the_services_description() -> None:
    text = json.dumps(
        {
            "status": {
                "latestReadyRevisionName": "svc-00003-c",
                "traffic": [
                    {"revisionName": "svc-00001-a", "percent": 90, "tag": "stable"},
                    {"revisionName": "svc-00003-c", "percent": 10, "latestRevision": True},
                    {"revisionName": "svc-00003-c", "tag": "candidate"},
                ],
            }
        }
    )
    traffic = deploy.Traffic.parse("svc", text)
    assert traffic.latest == "svc-00003-c"
    assert (traffic.share("svc-00001-a"), traffic.share("svc-00003-c")) == (90, 10)
    assert (traffic.tagged("stable"), traffic.tagged("candidate")) == ("svc-00001-a", "svc-00003-c")
    assert traffic.serving() == "svc-00001-a"
    with pytest.raises(deploy.DeployError, match="cannot read the traffic of service svc"):
        deploy.Traffic.parse("svc", '{"spec": {}}')


def test_cli_checks_its_arguments_before_anything_runs(
    fake_gcloud: FakeGcloud, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROJECT", "proj-1")
    assert deploy.main(["--dry-run", "shift", "chaos_delay"]) == 1
    assert "--percent goes with shift" in capsys.readouterr().err
    assert deploy.main(["--dry-run", "--percent", "10", "promote"]) == 1
    assert deploy.main(["--dry-run", "rollback", "nope"]) == 1
    assert "unknown function(s) nope" in capsys.readouterr().err
    assert deploy.main(["--dry-run", "shift", "--percent", "10"]) == 0
    out = printed(capsys.readouterr().out)
    shifted = [c[4] for c in out if c[1:4] == ["run", "services", "update-traffic"]]
    assert shifted == ["chaos-delay", "chaos-proxy"]  # every blue/green function by default
    # As `make deploy STEP=shift PERCENT=10 FUNCTIONS=chaos_proxy` writes it:
    assert deploy.main(["--dry-run", "shift", "--percent", "10", "chaos_proxy"]) == 0
    out = printed(capsys.readouterr().out)
    assert [c[4] for c in out if c[1:4] == ["run", "services", "update-traffic"]] == ["chaos-proxy"]
    assert fake_gcloud.calls() == []


def test_deploy_dry_run_of_the_repository_prints_commands_without_gcloud(
    fake_gcloud: FakeGcloud,
) -> None:
    """What `make deploy DRY_RUN=1` runs, on the real functions/ (bundles built into build/)."""
    env = {k: v for k, v in os.environ.items() if k not in {"PROJECT", "GOOGLE_CLOUD_PROJECT"}}
    recipe = subprocess.run(
        ["make", "--dry-run", "--no-print-directory", "deploy", "DRY_RUN=1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    (line,) = [x for x in recipe.replace("\\\n", " ").splitlines() if "-m scripts.deploy" in x]
    assert shlex.split(line)[-2:] == ["--dry-run", "deploy"]

    done = subprocess.run(
        [sys.executable, "-m", "scripts.deploy", "--dry-run", "deploy"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    commands = [shlex.split(x) for x in done.stdout.splitlines() if x.startswith("gcloud ")]
    assert [c[3] for c in commands if c[1:3] == ["functions", "deploy"]] == [
        s.name for s in FUNCTIONS
    ]
    assert all(flags(c)["--project"] == "PROJECT_ID" for c in commands if "--project" in flags(c))
    out = done.stdout
    assert "--update-tags=candidate=chaos-proxy-NEW" in out  # the tagged revision
    assert "--to-tags=candidate=10,stable=90" in out  # the traffic steps
    assert "--min-instances=1" in out
    assert "prewarm-chaos-delay" in out
    assert fake_gcloud.calls() == []


# --- every printed flag exists in the installed gcloud ----------------------------------------

GCLOUD = shutil.which("gcloud")
_FLAG = re.compile(r"--(\[no-\])?([a-z0-9][a-z0-9-]*)")
_METAVAR = re.compile(r"--([a-z0-9-]+)=([A-Z][A-Z0-9_]*)")
_CHOICES = re.compile(r"\b([A-Z][A-Z0-9_]*) must be one of:\s*(.+?)\.(?:\s|$)", re.DOTALL)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Help:
    """What ``gcloud ... --help`` says of a command."""

    name: str  # the command path, from the NAME line
    flags: frozenset[str]  # every flag it names (``--[no-]x`` as both)
    choices: dict[str, frozenset[str]]  # flag -> its values, where "X must be one of: ..."


def gcloud_help(words: tuple[str, ...], config: Path) -> Help:
    """Run ``gcloud words --help`` and read it."""
    assert GCLOUD is not None
    env = {**os.environ, "CLOUDSDK_CONFIG": str(config), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    done = subprocess.run(
        [GCLOUD, *words, "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    text = _ANSI.sub("", done.stdout)
    assert done.returncode == 0, f"gcloud {' '.join(words)}: {done.stderr}"
    assert "NAME" in text, text[:200]
    name = text.split("NAME", 1)[1].strip().split(" - ", 1)[0]
    found: set[str] = set()
    for negatable, flag in _FLAG.findall(text):
        found.add(f"--{flag}")
        if negatable:
            found.add(f"--no-{flag}")
    flag_of = {metavar: f"--{flag}" for flag, metavar in _METAVAR.findall(text)}
    choices = {
        flag_of[metavar]: frozenset(v.strip() for v in " ".join(values.split()).split(","))
        for metavar, values in _CHOICES.findall(text)
        if metavar in flag_of
    }
    return Help(" ".join(name.split()), frozenset(found), choices)


def every_command(repo: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[list[str]]:
    """The plan's commands and the variants only a real run takes."""
    yield from plan_commands(repo, capsys)
    settings = deploy.Settings.from_env({**PROJECT, "CHAOS_AUTH": "iam"})
    url = "https://x.run.app"
    yield deploy.scheduler_command("update", settings, url)
    yield deploy.prewarm_command("update", catalog.CHAOS_DELAY, settings, url)
    yield deploy.update_traffic_command(  # rollback after a promote
        "svc",
        settings,
        remove_tags=["previous"],
        update_tags=[("stable", "r1")],
        to_revisions=[("r1", 100)],
    )


@pytest.mark.skipif(GCLOUD is None, reason="the gcloud CLI is not installed (CI installs it)")
def test_every_printed_flag_exists_in_the_installed_gcloud(
    repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    by_command: dict[tuple[str, ...], list[list[str]]] = {}
    for argv in every_command(repo, capsys):
        assert argv[0] == "gcloud"
        words = tuple(a for a in argv[1:] if not a.startswith("--"))
        # Each command has one positional (function, service, job or account), the last word.
        by_command.setdefault(words[:-1], []).append(argv)
    assert len(by_command) >= 9

    def help_of(words: tuple[str, ...]) -> Help:
        positional = by_command[words][0][len(words) + 1]
        return gcloud_help((*words, positional), tmp_path / "gcloud-config")

    with ThreadPoolExecutor(max_workers=2) as pool:
        helps = dict(zip(by_command, pool.map(help_of, by_command), strict=True))
    checked_choices = set()
    for words, argvs in by_command.items():
        known = helps[words]
        command = "gcloud " + " ".join(words)
        assert known.name == command, f"{words} is not a gcloud command: {known.name}"
        for argv in argvs:
            unknown = sorted(f for f in flags(argv) if f not in known.flags)
            assert not unknown, f"{command} has no {unknown}: {shlex.join(argv)}"
            for flag, value in flags(argv).items():
                if flag in known.choices:
                    assert value.lower() in known.choices[flag], f"{command} {flag}={value}"
                    checked_choices.add(flag)
    assert "--http-method" in checked_choices  # the choice lists were read
