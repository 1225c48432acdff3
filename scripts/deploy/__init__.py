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

from scripts.deploy.cli import STEPS, chosen, main
from scripts.deploy.commands import (
    deploy_command,
    describe_command,
    function_env,
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
    set_env_vars_flag,
    update_traffic_command,
)
from scripts.deploy.errors import DeployError
from scripts.deploy.retries import MONITOR_RETRY, PREWARM_RETRY, RetryPolicy
from scripts.deploy.runners import DryRunner, GcloudRunner, Runner
from scripts.deploy.settings import DEFAULT_REGION, PLACEHOLDER_PROJECT, Settings
from scripts.deploy.steps import deploy, deploy_blue_green, plan, promote, rollback, shift
from scripts.deploy.traffic import CANDIDATE, PREVIOUS, STABLE, Traffic, dry_traffic

__all__ = [
    "CANDIDATE",
    "DEFAULT_REGION",
    "MONITOR_RETRY",
    "PLACEHOLDER_PROJECT",
    "PREVIOUS",
    "PREWARM_RETRY",
    "STABLE",
    "STEPS",
    "DeployError",
    "DryRunner",
    "GcloudRunner",
    "RetryPolicy",
    "Runner",
    "Settings",
    "Traffic",
    "chosen",
    "deploy",
    "deploy_blue_green",
    "deploy_command",
    "describe_command",
    "dry_traffic",
    "function_env",
    "invoker_binding_command",
    "is_public",
    "main",
    "plan",
    "predicted_service",
    "predicted_url",
    "prewarm_command",
    "prewarm_job",
    "promote",
    "rollback",
    "scheduler_command",
    "scheduler_describe_command",
    "service_account_commands",
    "service_describe_command",
    "set_env_vars_flag",
    "shift",
    "update_traffic_command",
]
