"""graph_ask's part in a rollout of its primary model (``GRAPH_ASK_ROLLOUT``).

Each request's user (``user`` or ``X-User-Id``) is assigned to the ``stable`` or ``candidate``
cohort of the rollout document (:class:`shared.canary.RolloutFollower`: cached a few seconds,
one bounded Firestore read, stable whenever the document cannot be read). The cohort's version
is the model asked first, in front of the fallback model; a version the model table does not
know is served by the configured primary instead (and logged), so a typo in a rollout never
fails requests.

The cohort is tagged on the answer (``cohort``, ``version``), on the response header
``X-Rollout-Cohort`` (which ``shared.obs`` keeps in the request record, so the local store can
compare the cohorts) and on the OpenTelemetry histogram ``rollout/latency`` (ms; attributes
``rollout``, ``cohort``, ``outcome``), which Cloud Monitoring holds in production. The
heartbeat reports the breakers of what graph_ask depends on now: the graph and the models of
its chains (stable, the candidate while it serves, the fallback).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Final

from shared.canary.assignment import Assignment, RolloutFollower
from shared.canary.rollout import Rollout
from shared.canary.sources import METRIC_NAME
from shared.canary.store import RolloutStore
from shared.resilience.circuit import breakers
from shared.resilience.fallback import breaker_name

if TYPE_CHECKING:
    from examples.graph_ask.settings import GraphAskSettings

logger = logging.getLogger("examples.graph_ask.rollout")

_SCOPE: Final = "graph_ask"
_histogram: Any = None
_histogram_lock = threading.Lock()


def breaker_states(s: GraphAskSettings, rollout: Rollout | None) -> dict[str, str]:
    """The states of the breakers of the dependencies in use under ``rollout``."""
    from examples.graph_ask.service import GRAPH_BREAKER  # service builds this module's follower

    models = {s.primary_model} if rollout is None else {rollout.stable}
    if rollout is not None and rollout.serving is not None:
        models.add(rollout.serving)
    if s.enabled("fallback"):
        models.add(s.fallback_model)
    wanted = {GRAPH_BREAKER, *(breaker_name(m) for m in models)}
    return {name: c.state for name, c in breakers().items() if name in wanted}


def follower_for(s: GraphAskSettings) -> RolloutFollower | None:
    """The follower of the configured rollout, or None when graph_ask follows none."""
    if s.rollout is None:
        return None
    store = RolloutStore(timeout_s=s.rollout_timeout_s)
    return RolloutFollower(
        s.rollout,
        store,
        refresh_s=s.rollout_refresh_s,
        timeout_s=s.rollout_timeout_s,
        breaker_states=lambda rollout: breaker_states(s, rollout),
    )


def models_for(assignment: Assignment | None, s: GraphAskSettings) -> tuple[str, ...]:
    """The chain for this request: the cohort's version first, then the fallback model."""
    first = s.primary_model
    if assignment is not None and assignment.version is not None:
        if assignment.version in s.models:
            first = assignment.version
        else:
            logger.error(
                "rollout %s: version %r is not in the model table; serving %s",
                assignment.rollout, assignment.version, s.primary_model,
            )  # fmt: skip
    if not s.enabled("fallback"):
        return (first,)
    return (first, s.fallback_model) if first != s.fallback_model else (first,)


def record_latency(assignment: Assignment, seconds: float, ok: bool) -> None:
    """One request of a cohort in the ``rollout/latency`` histogram (ms)."""
    global _histogram
    if _histogram is None:
        from shared.obs import telemetry

        with _histogram_lock:
            if _histogram is None:
                _histogram = telemetry.meter(_SCOPE).create_histogram(
                    METRIC_NAME, unit="ms", description="graph_ask answers by rollout cohort"
                )
    _histogram.record(
        seconds * 1000.0,
        {
            "rollout": assignment.rollout,
            "cohort": assignment.cohort,
            "outcome": "ok" if ok else "error",
        },
    )
