"""Cloud Function ``slo_monitor``: every SLO over the last 5 minutes, violations to Firestore,
alerts to Slack. Target of a Cloud Scheduler job (``*/5 * * * *``, OIDC).

The handler is thin: the monitor (settings, SLO file, clients) is built on the first request
by :mod:`shared.slo.service`, never at import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import functions_framework

from shared.obs import observed

if TYPE_CHECKING:
    import flask


@functions_framework.http
@observed("slo_monitor")
def slo_monitor(request: flask.Request) -> tuple[dict[str, object], int]:
    """Run the SLO checks once; answers the run summary as JSON (503: retry me)."""
    from shared.slo.service import handle

    return handle(request)
