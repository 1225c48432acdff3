"""The monitor's environment settings: read through :mod:`shared.settings`, once per instance.

:func:`settings` is the instance's memo (tests forget it with ``shared.settings.reset_settings``);
:meth:`Settings.from_env` reads a given mapping. A bad value raises
:class:`~shared.settings.SettingsError` naming every bad variable and what it allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from shared.settings import Env, once

__all__ = ["DEFAULT_CONFIG", "Settings", "resolve_config_path", "settings"]

#: Where the shipped SLO file lives relative to the project (and deployed bundle) root.
DEFAULT_CONFIG: Final = Path("config") / "slos.yaml"
_PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
_DAY: Final = 86400.0


@dataclass(frozen=True, slots=True)
class Settings:
    """Every environment variable the monitor reads; times in seconds.

    ``slack_webhook_url`` is a secret: it is excluded from ``repr`` and never logged.
    ``firestore_timeout_s`` bounds each Firestore step (retries included) and
    ``monitoring_timeout_s`` each Cloud Monitoring query, so a run whose stores are unreachable
    answers well inside the function's 120 s timeout; ``run_budget_s`` bounds the steps a slow
    (but answering) Firestore can add up to.
    """

    config_path: Path = _PROJECT_ROOT / DEFAULT_CONFIG
    slack_webhook_url: str | None = field(default=None, repr=False)
    slack_webhook_secret: str | None = None
    alert_link_url: str | None = None
    alert_cooldown_s: float = 3600.0
    alert_max_age_s: float = _DAY
    slack_timeout_s: float = 5.0
    firestore_timeout_s: float = 10.0
    monitoring_timeout_s: float = 15.0
    run_budget_s: float = 90.0
    local_metrics_db: str | None = None
    project_id: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read ``environ`` (default ``os.environ``); raises SettingsError listing every problem."""
        env = Env(environ)
        settings = cls(
            config_path=resolve_config_path(env.text("SLO_CONFIG")),
            slack_webhook_url=env.text("SLACK_WEBHOOK_URL"),
            slack_webhook_secret=env.text("SLACK_WEBHOOK_SECRET"),
            alert_link_url=env.text("ALERT_LINK_URL"),
            alert_cooldown_s=env.number("ALERT_COOLDOWN_S", 3600.0, low=0.0, high=7 * _DAY),
            alert_max_age_s=env.number("ALERT_MAX_AGE_S", _DAY, low=0.0, high=30 * _DAY),
            slack_timeout_s=env.number("SLACK_TIMEOUT_S", 5.0, low=0.1, high=30.0),
            firestore_timeout_s=env.number("FIRESTORE_TIMEOUT_S", 10.0, low=0.5, high=30.0),
            monitoring_timeout_s=env.number("MONITORING_TIMEOUT_S", 15.0, low=1.0, high=30.0),
            run_budget_s=env.number("SLO_RUN_BUDGET_S", 90.0, low=5.0, high=3600.0),
            local_metrics_db=env.text("LOCAL_METRICS_DB"),
            project_id=env.project(),
        )
        env.check()
        return settings


@once
def settings() -> Settings:
    """This instance's settings, read from the environment on first use."""
    return Settings.from_env()


def resolve_config_path(value: str | None) -> Path:
    """``SLO_CONFIG`` as given (absolute, or relative to the working directory if it exists
    there, else to the project root); unset: ``config/slos.yaml`` next to the code."""
    if not value:
        return _PROJECT_ROOT / DEFAULT_CONFIG
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return _PROJECT_ROOT / path
