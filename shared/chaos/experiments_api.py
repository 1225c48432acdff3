"""The experiments API of ``chaos_proxy``: start, list, read and stop timed experiments.

- ``POST /chaos_proxy/_experiments``: start one (``upstream``, ``mode``, ``duration_s``, optional
  ``slow_ms`` and ``name``);
- ``GET /chaos_proxy/_experiments``: the newest first;
- ``DELETE /chaos_proxy/_experiments[?upstream=&name=]``: stop every active experiment matching
  (all of them without a selector), so a rollback can end what its method started without knowing
  the id; idempotent;
- ``GET|DELETE /chaos_proxy/_experiments/<id>``: read or stop one.

Reading and stopping stay possible with the kill switch off: turning chaos off must never prevent
ending an experiment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

import flask

from shared.chaos.auth import Principal
from shared.chaos.config import ChaosSettings
from shared.chaos.params import parse_experiment_spec, parse_list_limit, parse_stop_selector
from shared.chaos.request import NO_STORE, Reply, admit, allow_methods, request_values
from shared.chaos.runtime import Runtime

if TYPE_CHECKING:
    from shared.chaos.experiments import Experiment

LOCATION_PREFIX: Final = "/chaos_proxy/_experiments/"


def serve_experiments(
    request: flask.Request, experiment_id: str | None, settings: ChaosSettings, rt: Runtime
) -> Reply:
    """The collection (``experiment_id`` None) or one experiment, by method."""
    if experiment_id is None:
        allow_methods(request, "GET", "POST", "DELETE")
    else:
        allow_methods(request, "GET", "DELETE")
    principal = admit(request, settings, rt, injects=request.method == "POST")
    now = rt.clock.time()
    if experiment_id is not None:
        if request.method == "GET":
            return rt.store.get(experiment_id).to_json(now), 200, dict(NO_STORE)
        stopped = rt.store.stop(experiment_id, now=now)
        rt.active.invalidate(stopped.upstream)
        _journal("stopped", stopped, principal)
        return stopped.to_json(now), 200, dict(NO_STORE)
    if request.method == "POST":
        spec = parse_experiment_spec(
            request_values(request, with_body=True),
            upstreams=settings.upstream_names,
            max_delay_ms=settings.max_delay_ms,
        )
        experiment = rt.store.start(spec, now=now, created_by=principal.label)
        rt.active.invalidate(spec.upstream)
        _journal("started", experiment, principal)
        location = LOCATION_PREFIX + experiment.id
        return experiment.to_json(now), 201, {"Location": location, **NO_STORE}
    if request.method == "DELETE":
        selector = parse_stop_selector(request_values(request, with_body=False))
        stopped_all = rt.store.stop_matching(
            upstream=selector.upstream, name=selector.name, now=now
        )
        for stopped in stopped_all:
            rt.active.invalidate(stopped.upstream)
            _journal("stopped", stopped, principal)
        body = {"stopped": [e.id for e in stopped_all], "count": len(stopped_all)}
        return body, 200, dict(NO_STORE)
    limit = parse_list_limit(request_values(request, with_body=False))
    listed = rt.store.list(limit=limit)
    body = {"experiments": [e.to_json(now) for e in listed], "count": len(listed)}
    return body, 200, dict(NO_STORE)


def _journal(action: Literal["started", "stopped"], e: Experiment, by: Principal) -> None:
    from shared.chaos.experiments import ExperimentChanged
    from shared.resilience import events

    events.emit(
        ExperimentChanged("chaos_proxy", action, e.id, e.upstream, e.mode, e.expires_at, by.label)
    )
