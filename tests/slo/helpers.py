"""Small builders shared by the SLO tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.slo.config import MonitorConfig, parse_config
from shared.slo.local_store import LocalStore, MetricPoint

#: 2026-11-26 12:05:00 UTC: a scheduler tick (multiple of 300 s).
TICK = 1_795_694_700.0


@dataclass(frozen=True)
class Rec:
    """A RequestRecord-shaped value (the store only needs the fields)."""

    function: str
    status: int
    latency_ms: float
    at: float
    injected: bool = False
    method: str = "GET"
    path: str = "/"
    trace_id: str = "t"


def local_config(*slos: dict[str, Any], policies: dict[str, Any] | None = None) -> MonitorConfig:
    doc: dict[str, Any] = {"backends": {"local": {}}, "slos": list(slos)}
    if policies is not None:
        doc["error_budget_policies"] = policies
    return parse_config(doc)


def ratio_slo(name: str = "api-errors", function: str = "api", **extra: Any) -> dict[str, Any]:
    return {"name": name, "backend": "local", "method": "good_bad_ratio", "goal": 0.99,
            "service_level_indicator": {"function": function}, **extra}  # fmt: skip


def latency_slo(name: str = "api-latency", function: str = "api", **extra: Any) -> dict[str, Any]:
    return {"name": name, "backend": "local", "method": "latency_percentile", "percentile": 95,
            "threshold_ms": 900, "service_level_indicator": {"function": function},
            **extra}  # fmt: skip


def traffic(
    store: LocalStore,
    function: str,
    *,
    start: float,
    end: float,
    count: int,
    errors: int = 0,
    latency_ms: float = 100.0,
    slow: int = 0,
    slow_ms: float = 2000.0,
    injected: bool = False,
) -> None:
    """``count`` requests spread evenly over ``[start, end)``; ``errors`` of them (answering
    503) and ``slow`` of them (taking ``slow_ms``) are spread evenly among them too."""
    step = (end - start) / count

    def picked(i: int, n: int) -> bool:
        return (i * n) // count != ((i + 1) * n) // count

    store.append_many(
        Rec(function, 503 if picked(i, errors) else 200,
            slow_ms if picked(i, slow) else latency_ms, start + i * step,
            injected=injected and picked(i, errors))
        for i in range(count)
    )  # fmt: skip


def deliveries(
    store: LocalStore,
    *,
    start: float,
    end: float,
    delivered: int,
    failed: int = 0,
    every: float = 10,
) -> None:
    """Insight deliveries as graph_ask's counter exports them: one delta point per outcome every
    ``every`` seconds of ``(start, end]``, the counts spread evenly over the points."""
    steps = max(1, round((end - start) / every))
    points = []
    for outcome, count in (("delivered", delivered), ("failed", failed)):
        for i in range(steps):
            share = count * (i + 1) // steps - count * i // steps
            if share:
                at = start + (i + 1) * (end - start) / steps
                points.append(MetricPoint("insights/deliveries", "counter", "graph-ask",
                                          {"outcome": outcome}, at - every, at, share))  # fmt: skip
    store.append_points(points)
