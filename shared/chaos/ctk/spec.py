"""The load a probe asks for, validated before any request is sent.

Kept free of gevent and Locust so the probe process (``chaos run``) can build and check it; only
the load process (:mod:`shared.chaos.ctk.locust_load`) imports Locust, which monkey-patches the
standard library on import.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any
from urllib.parse import urlsplit

from shared.chaos.ctk.errors import InvalidArgument

#: Loopback only: the load never leaves this machine.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
MAX_REQUESTS = 200_000
MAX_DURATION_S = 3600.0


@dataclass(frozen=True, slots=True)
class LoadSpec:
    """An open-model load: ``rate_rps`` arrivals per second for ``duration_s`` seconds.

    Arrivals are scheduled on a fixed timetable whatever the answers do (no coordinated
    omission); at most ``max_requests`` are sent and at most ``max_in_flight`` wait for an answer
    at once (a full pool delays the send, and the delay counts in the latency). A share
    ``premium_share`` of requests carries ``X-Plan: premium``, the rest ``free``. Questions cycle
    over ``questions`` distinct texts, so a cache in the service can hit. Times in seconds.
    """

    url: str
    rate_rps: float
    duration_s: float
    premium_share: float = 0.3
    questions: int = 8
    timeout_s: float = 10.0
    max_requests: int = 20_000
    max_in_flight: int = 64
    target_s: float = 1.0
    progress_s: float = 2.0
    label: str = "load"
    base_rpm: float | None = None  # the rate the load was scaled from (a service's capacity)
    status_url: str | None = None  # polled once a second for the admission queue length

    @property
    def planned(self) -> int:
        """How many requests the timetable holds."""
        return min(self.max_requests, max(1, math.floor(self.rate_rps * self.duration_s)))

    def plan_of(self, index: int) -> str:
        """The plan of the ``index``-th request: premium spread evenly at ``premium_share``."""
        before = math.floor(index * self.premium_share + 1e-9)
        after = math.floor((index + 1) * self.premium_share + 1e-9)
        return "premium" if after > before else "free"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadSpec:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _number(name: str, value: object, low: float, high: float, problems: list[str]) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or math.isnan(value)
        or not low <= value <= high
    ):
        problems.append(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


def _integer(name: str, value: object, low: int, high: int, problems: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{name} must be an integer in [{low}, {high}], got {value!r}")


def load_spec(**arguments: Any) -> LoadSpec:
    """A checked :class:`LoadSpec`; every bad argument is named in one :class:`InvalidArgument`."""
    problems: list[str] = []
    url = arguments.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        problems.append(f"url must be an http:// URL on 127.0.0.1 or localhost, got {url!r}")
    _number("rate_rps", arguments.get("rate_rps"), 0.01, 2000.0, problems)
    _number("duration_s", arguments.get("duration_s"), 0.1, MAX_DURATION_S, problems)
    defaults = LoadSpec(url="", rate_rps=1.0, duration_s=1.0)
    checks: tuple[tuple[str, float, float], ...] = (
        ("premium_share", 0.0, 1.0),
        ("timeout_s", 0.1, 600.0),
        ("target_s", 0.001, 600.0),
        ("progress_s", 0.1, 600.0),
    )
    for name, low, high in checks:
        _number(name, arguments.get(name, getattr(defaults, name)), low, high, problems)
    for name, ilow, ihigh in (
        ("questions", 1, 100_000),
        ("max_requests", 1, MAX_REQUESTS),
        ("max_in_flight", 1, 1000),
    ):
        _integer(name, arguments.get(name, getattr(defaults, name)), ilow, ihigh, problems)
    status_url = arguments.get("status_url")
    if status_url is not None:
        status_parts = urlsplit(status_url) if isinstance(status_url, str) else None
        if (
            status_parts is None
            or status_parts.scheme != "http"
            or status_parts.hostname not in LOOPBACK_HOSTS
        ):
            problems.append(f"status_url must be an http:// URL on 127.0.0.1, got {status_url!r}")
    base_rpm = arguments.get("base_rpm")
    if base_rpm is not None:
        _number("base_rpm", base_rpm, 0.01, 1_000_000.0, problems)
    label = arguments.get("label", defaults.label)
    if not isinstance(label, str) or not label:
        problems.append(f"label must be a non-empty string, got {label!r}")
    unknown = sorted(set(arguments) - {f.name for f in fields(LoadSpec)})
    if unknown:
        allowed = ", ".join(f.name for f in fields(LoadSpec))
        problems.append(f"unknown argument(s) {', '.join(unknown)}; allowed: {allowed}")
    if problems:
        raise InvalidArgument("; ".join(problems))
    return LoadSpec.from_dict(dict(arguments))
