"""Where and how to deploy, read once from the environment through :mod:`shared.settings`."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from shared.settings import Env, Problem

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

_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where and how to deploy; see :mod:`scripts.deploy` for the environment variables."""

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
                name, project, _Matcher(_PROJECT), allowed="a Google Cloud project id"
            )
        settings = cls(
            project=project,
            region=env.parse("REGION", DEFAULT_REGION, _Matcher(_REGION), allowed="a region"),
            runtime=env.parse(
                "RUNTIME",
                DEFAULT_RUNTIME,
                _Matcher(re.compile(r"^python3[0-9]+$")),
                allowed="a python3xx runtime",
            ),
            traffic_steps=env.parse(
                "TRAFFIC_STEPS",
                DEFAULT_STEPS,
                parse_steps,
                allowed="increasing percentages from 1 to 100 ending at 100, e.g. 10,50,100",
            ),
            scheduler_sa=env.parse(
                "SCHEDULER_SA", "", _Matcher(_EMAIL), allowed="a service account email"
            ),
            scheduler_job=env.text("SCHEDULER_JOB", DEFAULT_JOB) or DEFAULT_JOB,
            schedule=env.parse(
                "SLO_SCHEDULE", DEFAULT_SCHEDULE, parse_cron, allowed="a 5-field cron expression"
            ),
            # A public function with no caller check would let anyone inject faults once enabled.
            chaos_auth=env.choice("CHAOS_AUTH", "firebase", ("firebase", "iam")),
            slack_secret=env.text("SLACK_SECRET", "slack-webhook-url") or "slack-webhook-url",
            functions_sa=env.parse(
                "FUNCTIONS_SA", "", _Matcher(_EMAIL), allowed="a service account email"
            ),
            passthrough=tuple(
                (name, value) for name in CHAOS_PASSTHROUGH if (value := env.text(name)) is not None
            ),
            gcloud=env.text("GCLOUD", "gcloud") or "gcloud",
        )
        env.check()
        return settings


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
