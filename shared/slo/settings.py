"""The monitor's environment settings, parsed once per instance (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shared.slo.errors import ConfigInvalid

#: Where the shipped SLO file lives relative to the project (and deployed bundle) root.
DEFAULT_CONFIG = Path("config") / "slos.yaml"
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Settings:
    """Every environment variable the monitor reads; times in seconds.

    ``slack_webhook_url`` is a secret: it is excluded from ``repr`` and never logged.
    """

    config_path: Path = _PROJECT_ROOT / DEFAULT_CONFIG
    slack_webhook_url: str | None = field(default=None, repr=False)
    slack_webhook_secret: str | None = None
    alert_link_url: str | None = None
    alert_cooldown_s: float = 3600.0
    alert_max_age_s: float = 86400.0
    slack_timeout_s: float = 5.0
    local_metrics_db: str | None = None
    project_id: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``environ`` (default ``os.environ``); raises ConfigInvalid."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def seconds(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if not value >= 0:
                problems.append(f"{name}: must be a number of seconds >= 0; got {raw!r}")
                return default
            return value

        settings = cls(
            config_path=resolve_config_path(env.get("SLO_CONFIG", "").strip() or None),
            slack_webhook_url=env.get("SLACK_WEBHOOK_URL", "").strip() or None,
            slack_webhook_secret=env.get("SLACK_WEBHOOK_SECRET", "").strip() or None,
            alert_link_url=env.get("ALERT_LINK_URL", "").strip() or None,
            alert_cooldown_s=seconds("ALERT_COOLDOWN_S", 3600.0),
            alert_max_age_s=seconds("ALERT_MAX_AGE_S", 86400.0),
            slack_timeout_s=seconds("SLACK_TIMEOUT_S", 5.0) or 5.0,
            local_metrics_db=env.get("LOCAL_METRICS_DB", "").strip() or None,
            project_id=(env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCP_PROJECT") or "").strip()
            or None,
        )
        if problems:
            raise ConfigInvalid("environment", problems)
        return settings


def resolve_config_path(value: str | None) -> Path:
    """``SLO_CONFIG`` as given (absolute, or relative to the working directory if it exists
    there, else to the project root); unset: ``config/slos.yaml`` next to the code."""
    if not value:
        return _PROJECT_ROOT / DEFAULT_CONFIG
    path = Path(value)
    if path.is_absolute() or path.exists():
        return path
    return _PROJECT_ROOT / path
