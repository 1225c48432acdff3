"""Probes for the shipped playbooks: they drive the real resilience code and report numbers.

Each is a plain keyword-argument function returning a JSON-friendly dict, so a playbook's
tolerance can point into it (``output.fallback.answer_rate``). Counters come from a private
:class:`~shared.resilience.events.Metrics` installed next to the process's hooks for the probe's
duration: the same derivation as ``events.METRICS``, limited to this probe's own calls.
Latencies are in milliseconds, durations in seconds.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from shared.obs.percentiles import summarize
from shared.playbook.errors import PlaybookError
from shared.resilience import events

__all__ = ["cached_dependency", "cold_start", "llm_fallback", "priority_admission"]


@contextlib.contextmanager
def _counting() -> Iterator[events.Metrics]:
    """A fresh Metrics receiving every event emitted in the block (default hooks keep theirs)."""
    metrics = events.Metrics()
    previous = events.set_hooks((*events.hooks(), metrics))
    try:
        yield metrics
    finally:
        events.set_hooks(previous)


def _latency(values: Sequence[float]) -> dict[str, float] | None:
    return summarize(values).as_dict() if values else None


def llm_fallback(
    *,
    prompts: int,
    primary_base_url: str,
    fallback_base_url: str,
    primary_model: str = "gpt-4o-mini",
    fallback_model: str = "local-llm",
    timeout_s: float = 5.0,
    breaker_fail_max: int = 4,
    breaker_reset_s: float = 8.0,
    interval_s: float = 0.0,
) -> dict[str, Any]:
    """Send ``prompts`` prompts through :func:`~shared.resilience.fallback.ask_with_fallback`.

    The chain is ``primary`` (an OpenAI-compatible API at ``primary_base_url``, typically routed
    through ``chaos_proxy/<upstream>``) then ``fallback`` (at ``fallback_base_url``), each behind
    a fresh breaker. Reports the answer rate, the fallback hit rate, which model answered, the
    breakers that opened, and the latency of each ask. ``interval_s`` spaces the prompts.
    """
    from shared.resilience.circuit import Circuit
    from shared.resilience.fallback import AllModelsFailed, FallbackChain, ask_with_fallback
    from shared.resilience.llm import load_model_table

    if isinstance(prompts, bool) or not isinstance(prompts, int) or not 1 <= prompts <= 100_000:
        raise PlaybookError(f"prompts must be an integer in [1, 100000], got {prompts!r}")
    table = load_model_table(
        {
            "models": {
                "primary": {
                    "provider": "openai",
                    "base_url": primary_base_url,
                    "model": primary_model,
                    "timeout": timeout_s,
                },
                "fallback": {
                    "provider": "openai",
                    "base_url": fallback_base_url,
                    "model": fallback_model,
                    "timeout": timeout_s,
                },
            }
        },
        base=_empty_table(),
    )
    circuits = {
        name: Circuit(breaker_fail_max, breaker_reset_s, name=name)
        for name in ("llm:primary", "llm:fallback")
    }
    chain = FallbackChain(table=table, breaker_for=circuits.__getitem__, environ={})
    answered_by: Counter[str] = Counter()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    with _counting() as metrics:
        for index in range(prompts):
            started = time.monotonic()
            try:
                result = ask_with_fallback(
                    f"playbook prompt {index}", ("primary", "fallback"), chain=chain
                )
                answered_by[result.model] += 1
            except AllModelsFailed as exc:
                errors[str(exc)[:200]] += 1
            latencies.append((time.monotonic() - started) * 1000.0)
            if interval_s > 0 and index + 1 < prompts:
                time.sleep(interval_s)
        snapshot = metrics.snapshot()
    return {
        "prompts": prompts,
        "answered": sum(answered_by.values()),
        "answered_by": dict(answered_by),
        "fallback": snapshot["fallback"],
        "breakers_opened": snapshot["breakers"]["open"],
        "breaker_rejections": snapshot["breakers"]["rejected"],
        "latency_ms": _latency(latencies),
        "errors": dict(errors.most_common(3)),
    }


def _empty_table() -> Any:
    from shared.resilience.llm import ModelTable

    return ModelTable()


def priority_admission(
    *,
    capacity_rpm: float,
    duration_s: float,
    load_factor: float = 1.5,
    premium_share: float = 0.3,
    premium_deadline_s: float = 1.0,
    free_deadline_s: float = 5.0,
    target_s: float = 1.0,
    free_queue_size: int = 64,
    max_requests: int = 20_000,
) -> dict[str, Any]:
    """Offer ``load_factor`` times ``capacity_rpm`` to a PriorityAdmission for ``duration_s``.

    Arrivals are evenly spaced; every request is premium with the long-run share
    ``premium_share`` (deterministic interleaving). Reports, per plan, the count, admitted and
    rejected requests, the p95 wait and the share served within ``target_s`` (a rejected request
    is not served).
    """
    from shared.resilience.admission import PriorityAdmission
    from shared.resilience.errors import AdmissionRejected

    if not (capacity_rpm > 0 and duration_s > 0 and load_factor > 0 and 0 <= premium_share <= 1):
        raise PlaybookError(
            "capacity_rpm, duration_s and load_factor must be > 0 and premium_share in [0, 1]"
        )
    offered_rps = capacity_rpm * load_factor / 60.0
    total = min(max_requests, max(1, math.floor(offered_rps * duration_s)))
    admission = PriorityAdmission(
        capacity_rpm, free_queue_size=free_queue_size, name="playbook.admission"
    )
    lock = threading.Lock()
    waits: dict[str, list[float]] = {"premium": [], "free": []}
    counts: Counter[str] = Counter()
    rejected: Counter[str] = Counter()

    def request(plan: Any) -> None:
        deadline = premium_deadline_s if plan == "premium" else free_deadline_s
        started = time.monotonic()
        try:
            admission.admit(plan, deadline)
        except AdmissionRejected:
            with lock:
                rejected[plan] += 1
            return
        with lock:
            waits[plan].append((time.monotonic() - started) * 1000.0)

    plans = []
    share = 0.0
    for _ in range(total):
        share += premium_share
        if share >= 1.0 - 1e-9:
            share -= 1.0
            plans.append("premium")
        else:
            plans.append("free")
    started = time.monotonic()
    workers = min(512, total)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="admission") as pool:
        for index, plan in enumerate(plans):
            delay = started + index / offered_rps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            counts[plan] += 1
            pool.submit(request, plan)
    elapsed = time.monotonic() - started
    report: dict[str, Any] = {
        "capacity_rpm": capacity_rpm,
        "offered_rpm": round(offered_rps * 60.0, 3),
        "requests": total,
        "elapsed_s": round(elapsed, 3),
    }
    for plan in ("premium", "free"):
        served = waits[plan]
        within = sum(1 for w in served if w < target_s * 1000.0)
        report[plan] = {
            "count": counts[plan],
            "admitted": len(served),
            "rejected": rejected[plan],
            "p95_wait_ms": summarize(served).p95 if served else None,
            "within_target_rate": within / counts[plan] if counts[plan] else None,
        }
    return report


def cached_dependency(
    *,
    url: str,
    requests: int,
    keys: int = 1,
    ttl_s: float = 60.0,
    timeout_s: float = 4.0,
    fallback_message: str = "잠시 후 다시 시도해 주세요",
) -> dict[str, Any]:
    """Read a slow dependency (``chaos_delay?d=…``) through a :class:`TTLCache`, ``requests`` times.

    Reads cycle over ``keys`` cache keys; a miss calls ``url`` with ``timeout_s``. A miss that
    fails or times out shows the UX fallback message instead of data. Reports the cache hit
    rate, the UX fallback rate and the latency the user saw.
    """
    import requests as http

    from shared.resilience.cache import TTLCache

    if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
        raise PlaybookError(f"requests must be an integer >= 1, got {requests!r}")
    if isinstance(keys, bool) or not isinstance(keys, int) or keys < 1:
        raise PlaybookError(f"keys must be an integer >= 1, got {keys!r}")
    cache = TTLCache(max_entries=max(keys, 1), name="playbook.dependency")
    latencies: list[float] = []
    fallbacks = 0
    session = http.Session()
    session.trust_env = False

    def fetch() -> Any:
        response = session.get(url, timeout=timeout_s)
        response.raise_for_status()
        return response.json()

    with _counting() as metrics, session:
        for index in range(requests):
            started = time.monotonic()
            try:
                cache.get_or_load(f"key-{index % keys}", ttl_s, fetch)
            except http.RequestException:
                fallbacks += 1  # the user sees fallback_message
            latencies.append((time.monotonic() - started) * 1000.0)
        snapshot = metrics.snapshot()
    return {
        "requests": requests,
        "cache": snapshot["cache"],
        "ux_fallbacks": fallbacks,
        "ux_fallback_rate": fallbacks / requests,
        "fallback_message": fallback_message,
        "latency_ms": _latency(latencies),
    }


def cold_start(*, urls: Sequence[str], calls: int = 10, timeout_s: float = 10.0) -> dict[str, Any]:
    """Call each URL (in random order, like traffic from random regions) ``calls`` times.

    Reports each URL's first-call latency (cold or prewarmed) and warm p95, and the worst of
    them: ``max_first_ms`` and ``max_warm_p95_ms``. A failing call (no answer or 5xx) counts in
    ``failures``.
    """
    import requests as http

    if not urls or isinstance(urls, str):
        raise PlaybookError("urls must be a non-empty list of URLs")
    if isinstance(calls, bool) or not isinstance(calls, int) or calls < 2:
        raise PlaybookError(f"calls must be an integer >= 2, got {calls!r}")
    order = list(urls)
    random.shuffle(order)
    per_url: dict[str, Any] = {}
    failures = 0
    for url in order:
        latencies: list[float] = []
        with http.Session() as session:
            session.trust_env = False
            for _ in range(calls):
                started = time.monotonic()
                try:
                    ok = session.get(url, timeout=timeout_s).status_code < 500
                except http.RequestException:
                    ok = False
                latencies.append((time.monotonic() - started) * 1000.0)
                failures += int(not ok)
        per_url[url] = {
            "first_ms": latencies[0],
            "warm_p95_ms": summarize(latencies[1:]).p95,
        }
    return {
        "urls": per_url,
        "calls": calls * len(order),
        "failures": failures,
        "max_first_ms": max(u["first_ms"] for u in per_url.values()),
        "max_warm_p95_ms": max(u["warm_p95_ms"] for u in per_url.values()),
    }
