"""The deploy's steps: deploy (blue/green or straight), shift, promote, rollback, and the plan."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from scripts import bundle
from scripts.catalog import FUNCTIONS, REPO, SLO_MONITOR, FunctionSpec
from scripts.deploy.commands import (
    deploy_command,
    describe_command,
    describe_url_command,
    invoker_binding_command,
    is_public,
    predicted_service,
    predicted_url,
    prewarm_command,
    prewarm_job,
    scheduler_command,
    scheduler_describe_command,
    service_account_commands,
    service_describe_command,
    update_traffic_command,
)
from scripts.deploy.errors import DeployError
from scripts.deploy.runners import DryRunner, Runner
from scripts.deploy.settings import Settings
from scripts.deploy.traffic import CANDIDATE, PREVIOUS, STABLE, Traffic, dry_traffic

_NOT_FOUND = re.compile(r"NOT_FOUND|status=\[404\]|does not exist|not found", re.IGNORECASE)


def service_of(spec: FunctionSpec, settings: Settings, runner: Runner) -> str | None:
    """The Cloud Run service behind ``spec``; None when the function is not deployed."""
    out = runner.run(
        describe_command(spec, settings, "serviceConfig.service"), capture=True, check=False
    )
    if runner.dry:
        return predicted_service(spec)
    if runner.last_ok and out:
        return out.rsplit("/", 1)[-1]
    # Only a function that is not there is deployed as new (all traffic at once): a describe
    # that failed for any other reason (permissions, network) must not skip blue/green.
    if not _NOT_FOUND.search(runner.last_error):
        raise DeployError(f"cannot tell whether {spec.name} is deployed: {runner.last_error!r}")
    return None


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
