"""Cloud Function ``chaos_delay``: wait a random ``d..2d`` ms, then fail with probability ``p``.

``GET /chaos_delay?p=0.2&d=300[&status=500][&seed=N][&retry_after=1]`` (or the same as a JSON body
on POST). Contract: ``openapi/chaos.yaml``; configuration: :mod:`shared.chaos.config`.
"""

from __future__ import annotations

import flask
import functions_framework
from flask.typing import ResponseReturnValue

from shared.chaos.delay_handler import serve_delay
from shared.chaos.request import answer_framework_errors
from shared.obs import observed


@functions_framework.http
@observed("chaos_delay")
def chaos_delay(request: flask.Request) -> ResponseReturnValue:
    """Random delay and error injection, behind the kill switch and the role check."""
    return serve_delay(request)


answer_framework_errors("chaos_delay")
