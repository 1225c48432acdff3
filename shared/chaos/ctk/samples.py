"""What one load run saw, request by request, and the report the tolerances read.

A :class:`Sample` is one request measured from outside: its plan, status, the latency from its
*scheduled* start (so a saturated service shows as latency, not as a lower rate), and the fields
the service's answer and headers carry. :func:`summarize` turns samples into the JSON report a
playbook's tolerance reads; percentiles come from an HDR histogram (microsecond resolution,
3 significant digits). Latencies in the report are milliseconds, times seconds.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

SERVED = ("normal", "cached", "stale", "fallback", "degraded")
#: Largest latency the histograms hold (10 minutes, in microseconds); longer ones are clamped.
_MAX_US = 600_000_000


@dataclass(frozen=True, slots=True)
class Sample:
    """One request. ``status`` 0 is a connection error or client timeout."""

    at_s: float  # scheduled send time, seconds after the run started
    plan: str
    status: int
    latency_ms: float  # from the scheduled start to the end of the body
    served: str | None = None
    model: str | None = None
    cache: str | None = None
    queue_wait_ms: float | None = None
    retry_after: str | None = None  # the Retry-After header of a 429
    degraded_reason: str | None = None
    trace_id: str | None = None  # the X-Trace-Id header: find its spans with shared.obs.traces

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentiles(values_ms: Iterable[float]) -> dict[str, float] | None:
    """``{"count", "p50", "p95", "p99", "max"}`` in ms from an HDR histogram; None when empty."""
    histogram = HdrHistogram(1, _MAX_US, 3)
    for value in values_ms:
        histogram.record_value(min(_MAX_US, max(1, round(value * 1000.0))))
    count = histogram.get_total_count()
    if count == 0:
        return None
    return {
        "count": count,
        "p50": histogram.get_value_at_percentile(50) / 1000.0,
        "p95": histogram.get_value_at_percentile(95) / 1000.0,
        "p99": histogram.get_value_at_percentile(99) / 1000.0,
        "max": histogram.get_max_value() / 1000.0,
    }


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _plan_report(samples: Sequence[Sample], target_ms: float) -> dict[str, Any]:
    ok = [s for s in samples if s.status == 200]
    answered = [s for s in ok if s.served != "degraded"]
    refused = [s for s in samples if s.status == 429]
    waits = [s.queue_wait_ms for s in ok if s.queue_wait_ms is not None]
    return {
        "sent": len(samples),
        "answered": len(answered),
        "refused": len(refused),
        "answered_ratio": _ratio(len(answered), len(samples)),
        # A refused, failed or degraded request is not served within the target.
        "within_target_ratio": _ratio(
            sum(1 for s in answered if s.latency_ms < target_ms), len(samples)
        ),
        "latency_ms": percentiles(s.latency_ms for s in ok),
        "slowest": _slowest(samples),
        "queue_wait_ms": percentiles(waits),
    }


def _timeline(
    samples: Sequence[Sample],
    duration_s: float,
    buckets: int,
    queue: Sequence[tuple[float, int]],
) -> list[dict[str, Any]]:
    """The run cut into ``buckets`` equal slices by scheduled time: 429s and queueing over time.

    ``queue`` holds ``(at_s, requests waiting for admission)`` read from the service's status.
    """
    width = max(duration_s / buckets, 1e-9)

    def slot(at_s: float) -> int:
        return min(buckets - 1, max(0, math.floor(at_s / width)))

    slices: list[list[Sample]] = [[] for _ in range(buckets)]
    for sample in samples:
        slices[slot(sample.at_s)].append(sample)
    waiting: list[list[int]] = [[] for _ in range(buckets)]
    for at_s, length in queue:
        waiting[slot(at_s)].append(length)
    rows = []
    for index, part in enumerate(slices):
        ok = [s for s in part if s.status == 200]
        refused = sum(1 for s in part if s.status == 429)
        latency = percentiles(s.latency_ms for s in ok)
        waits = percentiles(s.queue_wait_ms for s in ok if s.queue_wait_ms is not None)
        rows.append(
            {
                "t_s": round(index * width, 3),
                "sent": len(part),
                "ok": len(ok),
                "degraded": sum(1 for s in ok if s.served == "degraded"),
                "refused_ratio": _ratio(refused, len(part)),
                "error_ratio": _ratio(len(part) - len(ok) - refused, len(part)),
                "p95_ms": latency["p95"] if latency else None,
                "queue_wait_p95_ms": waits["p95"] if waits else None,
                "queue_length_max": max(waiting[index]) if waiting[index] else None,
            }
        )
    return rows


def summarize(
    samples: Sequence[Sample],
    *,
    planned: int,
    duration_s: float,
    elapsed_s: float,
    target_s: float = 1.0,
    base_rpm: float | None = None,
    buckets: int = 10,
    queue: Sequence[tuple[float, int]] = (),
) -> dict[str, Any]:
    """The report of one run: the numbers a playbook's tolerances read.

    ``ok`` is a 200 of any ``served`` kind, ``answered`` a 200 that is not the degraded UX message,
    ``refused`` a 429; anything else (5xx, 4xx other than 429, connection errors as status "0") is
    in ``errors``. Latencies are over every 200 (what users saw, the UX message included).
    Ratios are over requests sent and are None when nothing was sent. ``served_rpm`` is 200s
    per minute over the load's window (``duration_s``, longer if answers came late);
    ``served_per_base_rpm`` is that divided by ``base_rpm`` (the rate the load was scaled from,
    e.g. the service's capacity: a limiter holds it near 1 whatever the load factor).
    """
    sent = len(samples)
    ok = [s for s in samples if s.status == 200]
    answered = [s for s in ok if s.served != "degraded"]
    refused = [s for s in samples if s.status == 429]
    window_s = max(duration_s, elapsed_s)  # the load's window, longer if answers came late
    served_rpm = len(ok) * 60.0 / window_s if window_s > 0 else None
    errors = Counter(str(s.status) for s in samples if s.status not in (200, 429))
    served = Counter(s.served or "unknown" for s in ok)
    cache = Counter(s.cache or "unknown" for s in ok)
    models = Counter(s.model or "none" for s in answered)
    fallback_by_model = Counter(s.model or "none" for s in ok if s.served == "fallback")
    reasons = Counter(s.degraded_reason or "unknown" for s in ok if s.served == "degraded")
    retry_after = [s.retry_after for s in refused]
    retry_after_s = [float(v) for v in retry_after if v is not None and _is_number(v)]
    plans = sorted({s.plan for s in samples})
    cache_lookups = sum(cache[k] for k in ("hit", "miss", "stale"))
    return {
        "planned": planned,
        "sent": sent,
        "ok": len(ok),
        "ok_ratio": _ratio(len(ok), sent),
        "answered": len(answered),
        "answered_ratio": _ratio(len(answered), sent),
        "ok_or_refused_ratio": _ratio(len(ok) + len(refused), sent),
        "errors": dict(sorted(errors.items())),
        "error_ratio": _ratio(sum(errors.values()), sent),
        "latency_ms": percentiles(s.latency_ms for s in ok),
        "slowest": _slowest(samples),
        "plans": {
            plan: _plan_report([s for s in samples if s.plan == plan], target_s * 1000.0)
            for plan in plans
        },
        "served": {kind: served.get(kind, 0) for kind in (*SERVED, "unknown")},
        "served_ratio": {kind: _ratio(served.get(kind, 0), len(ok)) for kind in SERVED},
        "stale_or_degraded_ratio": _ratio(served["stale"] + served["degraded"], len(ok)),
        "cache": dict(sorted(cache.items())),
        "cache_hit_ratio": _ratio(cache["hit"] + cache["stale"], cache_lookups),
        "models": dict(sorted(models.items())),
        "fallback_ratio": _ratio(served["fallback"], len(answered)),
        "degraded_reasons": dict(sorted(reasons.items())),
        "fallback_by_model": dict(sorted(fallback_by_model.items())),
        "refused": {
            "count": len(refused),
            "ratio": _ratio(len(refused), sent),
            "with_retry_after_ratio": _ratio(sum(1 for v in retry_after if v), len(refused)),
            "without_retry_after": sum(1 for v in retry_after if not v),
            "retry_after_s_max": max(retry_after_s) if retry_after_s else None,
        },
        "served_rpm": served_rpm,
        "served_per_base_rpm": served_rpm / base_rpm
        if served_rpm is not None and base_rpm
        else None,
        "offered_rpm": sent * 60.0 / duration_s if duration_s > 0 else None,
        "duration_s": duration_s,
        "elapsed_s": round(elapsed_s, 3),
        "target_s": target_s,
        "queue_length_max": max((length for _, length in queue), default=None),
        "timeline": _timeline(samples, duration_s, buckets, queue),
    }


def _slowest(samples: Sequence[Sample]) -> dict[str, Any] | None:
    """The slowest request with its trace id, so a report points at the trace to read."""
    traced = [s for s in samples if s.trace_id]
    if not traced:
        return None
    worst = max(traced, key=lambda s: s.latency_ms)
    return {
        "latency_ms": round(worst.latency_ms, 1),
        "status": worst.status,
        "served": worst.served,
        "trace_id": worst.trace_id,
    }


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
