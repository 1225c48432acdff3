"""One reset of every piece of ``shared.obs`` global state, for the tests' autouse fixture."""

from __future__ import annotations

from shared.obs.instance import reset_instances
from shared.obs.logging import teardown_logging
from shared.obs.requests import clear_request_sinks
from shared.obs.sink_factory import uninstall_configured_sink
from shared.settings import reset_settings


def reset() -> None:
    """Forget what ``shared.obs`` set up: per-instance settings and samplers, the configured
    request store (its queued records written first), every request sink, and the JSON handler
    and PII filters on the root logger. The next observed request sets all of it up again."""
    uninstall_configured_sink()
    clear_request_sinks()
    reset_instances()
    reset_settings()
    teardown_logging()
