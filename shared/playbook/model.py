"""A validated playbook as frozen dataclasses: what the runner executes and the journal records.

Built only by :func:`shared.playbook.loader.load_playbook`, which checks every field first; the
classes themselves trust their inputs. Durations are in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from shared.playbook.tolerance import Tolerance

ActivityType: TypeAlias = Literal["action", "probe"]
HttpMethod: TypeAlias = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]


@dataclass(frozen=True, slots=True)
class HttpProvider:
    """One HTTP request. ``expected_status`` empty means any 2xx."""

    url: str
    method: HttpMethod = "GET"
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    timeout_s: float = 10.0
    expected_status: tuple[int, ...] = ()

    type: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class PythonProvider:
    """A call of ``func`` (a dotted path under an allowed package) with keyword ``arguments``."""

    func: str
    arguments: Mapping[str, Any] = field(default_factory=dict)

    type: Literal["python"] = "python"


@dataclass(frozen=True, slots=True)
class LoadProvider:
    """Open-loop HTTP load: ``rate_rps`` requests per second for ``duration_s`` seconds.

    At most ``concurrency`` requests are in flight and never more than ``max_requests`` are sent.
    Latencies are measured from each request's scheduled start (no coordinated omission).
    """

    url: str
    rate_rps: float
    duration_s: float
    concurrency: int = 8
    max_requests: int = 1000
    method: HttpMethod = "GET"
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    timeout_s: float = 10.0
    allow_remote: bool = False

    type: Literal["load"] = "load"


@dataclass(frozen=True, slots=True)
class SleepProvider:
    """Wait ``seconds``."""

    seconds: float

    type: Literal["sleep"] = "sleep"


Provider: TypeAlias = HttpProvider | PythonProvider | LoadProvider | SleepProvider


@dataclass(frozen=True, slots=True)
class Pauses:
    """Seconds to wait before and after an activity."""

    before: float = 0.0
    after: float = 0.0


@dataclass(frozen=True, slots=True)
class Activity:
    """An action (changes the system) or a probe (observes it), with its provider.

    A probe in the hypothesis has a ``tolerance``; one in the method may have one too, which is
    then journaled but does not by itself decide the run (success criteria do).
    """

    type: ActivityType
    name: str
    provider: Provider
    path: str
    tolerance: Tolerance | None = None
    pauses: Pauses = Pauses()


@dataclass(frozen=True, slots=True)
class Hypothesis:
    """The steady state: every probe's output must be within its tolerance."""

    title: str
    probes: tuple[Activity, ...]


@dataclass(frozen=True, slots=True)
class Criterion:
    """A success criterion: the output of the method probe named ``probe`` within ``tolerance``."""

    name: str
    probe: str
    tolerance: Tolerance
    path: str


@dataclass(frozen=True, slots=True)
class Playbook:
    """A whole experiment, validated, with configuration already substituted."""

    title: str
    description: str
    source: str
    hypothesis: Hypothesis | None
    method: tuple[Activity, ...]
    rollbacks: tuple[Activity, ...]
    success_criteria: tuple[Criterion, ...]
    configuration: Mapping[str, Any]
    tags: tuple[str, ...] = ()
