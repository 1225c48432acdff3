"""Entry point of ``graph_ask``, the system under test (``make run`` serves it on port 8085).

``POST /graph_ask``, ``POST /insights/deliver``, ``GET /graph_ask/_status``: see
:mod:`examples.graph_ask.routes`; settings: :mod:`examples.graph_ask.settings`.
"""

from __future__ import annotations

import flask
import functions_framework
from flask.typing import ResponseReturnValue

from examples.graph_ask.routes import serve


@functions_framework.http
def graph_ask(request: flask.Request) -> ResponseReturnValue:
    """Route by path to the ask, deliver or status handler."""
    return serve(request)
