"""Cloud Function ``chaos_proxy``: dependency outage simulator and fault-injecting forwarder.

- ``GET /chaos_proxy?mode=ok|drop|slow|error[&slow_ms=N]``: answer in that mode.
- ``/chaos_proxy/<upstream>/<path>``: forward to a configured upstream, shaped by its active
  experiment.
- ``POST|GET|DELETE /chaos_proxy/_experiments``, ``GET|DELETE /chaos_proxy/_experiments/<id>``:
  timed experiments (a ``DELETE`` of the collection stops those matching ``?upstream=&name=``).

Contract: ``openapi/chaos.yaml``; configuration: :mod:`shared.chaos.config`.
"""

from __future__ import annotations

import flask
import functions_framework
from flask.typing import ResponseReturnValue

from shared.chaos.proxy_handler import serve_proxy
from shared.chaos.request import answer_framework_errors
from shared.obs import observed


@functions_framework.http
@observed("chaos_proxy")
def chaos_proxy(request: flask.Request) -> ResponseReturnValue:
    """Route by path to the mode endpoint, the experiments API or forwarding."""
    return serve_proxy(request)


answer_framework_errors("chaos_proxy")
