"""Cloud Function ``slo_monitor``: every SLO over the last 5 minutes, violations to Firestore,
alerts to Slack, then the rollout gate on every active rollout. Target of a Cloud Scheduler job
(``*/5 * * * *``, OIDC).

The handler is thin: the monitor (settings, SLO file, clients) is built on the first request
by :mod:`shared.slo.service`, never at import. The rollout gate rides on each run as a step
(:mod:`shared.canary.step`): it needs the run's SLO verdicts and reads the same data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import functions_framework

from shared.obs import observed
from shared.slo.service import use_steps

if TYPE_CHECKING:
    import flask

    from shared.canary.step import RolloutStep
    from shared.slo.service import StepContext


def rollout_gate(context: StepContext) -> RolloutStep | None:
    """The rollout step, imported with the monitor on the first request, not with this module."""
    from shared.canary.step import rollout_step

    return rollout_step(context)


use_steps(rollout_gate)


@functions_framework.http
@observed("slo_monitor")
def slo_monitor(request: flask.Request) -> tuple[dict[str, object], int]:
    """Run the SLO checks once; answers the run summary as JSON (503: retry me)."""
    from shared.slo.service import handle

    return handle(request)
