"""The numbers of a finished run, read from Chaos Toolkit's journal: what the verdict rests on.

:func:`measurements` flattens each load or cold-start output in the journal (steady state before,
method, steady state after) into a few named numbers, and derives what only the pair tells:
``added_p95_ms`` (a hypothesis probe's p95 after the method minus before) and
``prewarm_effect_ms`` (first request without prewarm minus with it). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.chaos.ctk.criteria import lookup

__all__ = ["measurements", "numbers_of"]

#: Report paths shown for a load run, by the name they get in the summary.
LOAD_NUMBERS: dict[str, str] = {
    "sent": "sent",
    "answered": "answered_ratio",
    "ok": "ok_ratio",
    "errors": "error_ratio",
    "p50_ms": "latency_ms.p50",
    "p95_ms": "latency_ms.p95",
    "p99_ms": "latency_ms.p99",
    "premium_p95_ms": "plans.premium.latency_ms.p95",
    "premium_within": "plans.premium.within_target_ratio",
    "free_p95_ms": "plans.free.latency_ms.p95",
    "free_within": "plans.free.within_target_ratio",
    "free_queue_p95_ms": "plans.free.queue_wait_ms.p95",
    "refused": "refused.ratio",
    "refused_with_retry_after": "refused.with_retry_after_ratio",
    "cache_hit": "cache_hit_ratio",
    "cached": "served_ratio.cached",
    "stale": "served_ratio.stale",
    "degraded": "served_ratio.degraded",
    "fallback": "fallback_ratio",
    "queue_length_max": "queue_length_max",
    "served_rpm": "served_rpm",
    "offered_rpm": "offered_rpm",
    "slowest_ms": "slowest.latency_ms",
    "slowest_trace": "slowest.trace_id",
}
COLD_START_NUMBERS: dict[str, str] = {
    "start_s": "start_s",
    "prewarm_ms": "prewarm_ms",
    "first_ms": "first_ms",
    "warm_p95_ms": "warm_p95_ms",
    "first_over_warm_ms": "first_over_warm_ms",
    "cache_hit": "cache_hit_ratio",
    "failures": "failures",
}


def numbers_of(output: Any) -> dict[str, Any] | None:
    """The summary numbers of one activity's output (None if it is neither load nor cold start)."""
    if not isinstance(output, Mapping):
        return None
    if "latency_ms" in output and "sent" in output:
        numbers = {name: lookup(output, path) for name, path in LOAD_NUMBERS.items()}
        for extra in ("fallback_by_model", "degraded_reasons"):
            if output.get(extra):
                numbers[extra] = dict(output[extra])
        numbers.update(_over_time(output.get("timeline")))
        return {k: v for k, v in numbers.items() if v is not None}
    if "first_ms" in output and "prewarm" in output:
        numbers = {name: lookup(output, path) for name, path in COLD_START_NUMBERS.items()}
        numbers["prewarm"] = bool(output["prewarm"])
        return numbers
    return None


def _over_time(timeline: Any) -> dict[str, list[int | None]]:
    """429 share (%), queue wait p95 (ms), queue length per slice of the run, if any."""
    if not isinstance(timeline, list) or not timeline:
        return {}
    refused = [row.get("refused_ratio") for row in timeline]
    waits = [row.get("queue_wait_p95_ms") for row in timeline]
    lengths = [row.get("queue_length_max") for row in timeline]
    series: dict[str, list[int | None]] = {}
    if any(r for r in refused):
        series["refused_pct_over_time"] = [None if r is None else round(r * 100) for r in refused]
    if any(w is not None and w >= 1.0 for w in waits):
        series["queue_p95_ms_over_time"] = [None if w is None else round(w) for w in waits]
    if any(n for n in lengths):
        series["queue_length_over_time"] = list(lengths)
    return series


def _runs(journal: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    steady = journal.get("steady_states") or {}
    runs: list[tuple[str, Mapping[str, Any]]] = []
    for phase in ("before", "after"):
        for run in (steady.get(phase) or {}).get("probes") or []:
            runs.append((phase, run))
    for run in journal.get("run") or []:
        runs.append(("method", run))
    return runs


def measurements(journal: Mapping[str, Any]) -> dict[str, Any]:
    """``{"rows": [{phase, activity, status, numbers}], "derived": {...}}`` of a journal."""
    rows: list[dict[str, Any]] = []
    for phase, run in _runs(journal):
        numbers = numbers_of(run.get("output"))
        if numbers is None:
            continue
        activity = run.get("activity") or {}
        rows.append(
            {
                "phase": phase,
                "activity": activity.get("name"),
                "status": run.get("status"),
                "tolerance_met": run.get("tolerance_met"),
                "numbers": numbers,
            }
        )
    derived: dict[str, Any] = {}
    before = {r["activity"]: r["numbers"] for r in rows if r["phase"] == "before"}
    for row in rows:
        if row["phase"] != "after":
            continue
        base = before.get(row["activity"], {})
        if "p95_ms" in base and "p95_ms" in row["numbers"]:
            derived[f"added_p95_ms[{row['activity']}]"] = round(
                row["numbers"]["p95_ms"] - base["p95_ms"], 3
            )
    firsts: dict[bool, list[float]] = {True: [], False: []}
    for row in rows:
        numbers = row["numbers"]
        if "first_ms" in numbers and numbers.get("failures") == 0:
            firsts[bool(numbers["prewarm"])].append(float(numbers["first_ms"]))
    if firsts[True] and firsts[False]:
        with_prewarm = sum(firsts[True]) / len(firsts[True])
        without = sum(firsts[False]) / len(firsts[False])
        derived["first_ms_with_prewarm"] = round(with_prewarm, 3)
        derived["first_ms_without_prewarm"] = round(without, 3)
        derived["prewarm_effect_ms"] = round(without - with_prewarm, 3)
    return {"rows": rows, "derived": derived}
