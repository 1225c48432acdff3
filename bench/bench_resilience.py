"""Success-path overhead of the resilience layers, and whether one breaker serializes threads.

Run: ``python -m bench.bench_resilience`` (or ``make bench``). Everything is measured in the same
run, on the same machine, with ``time.perf_counter``; each row is the best of several repeats of
a calibrated number of calls (up to 200k). Exits non-zero when a target is missed:

* breaker+retry success path <= 2x a bare ``pybreaker.CircuitBreaker.call``;
* 8 threads x 100 ms through one shared breaker <= 1.2x the same 8 threads without it
  (pybreaker 1.4.1 holds its lock during the call, pybreaker#55: ~0.8 s, shown for comparison).
"""

from __future__ import annotations

import functools
import gc
import itertools
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pybreaker
import tenacity

from shared.resilience.circuit import Circuit
from shared.resilience.compose import with_breaker_and_retry

MAX_ITERATIONS = 200_000
MIN_ITERATIONS = 20_000
REPEAT_SECONDS = 0.15  # target duration of one repeat; keeps the whole run well under 60 s
REPEATS = 5
THREADS = 8
NAP = 0.1

RETRY_VS_PYBREAKER_TARGET = 2.0
CONCURRENCY_TARGET = 1.2


def dependency() -> int:
    """The guarded call: as cheap as possible, so only the wrappers' overhead shows."""
    return 1


def _time_loop(fn: Callable[[], Any], iterations: int) -> float:
    repeat = itertools.repeat(None, iterations)
    start = time.perf_counter()
    for _ in repeat:
        fn()
    return time.perf_counter() - start


def per_call_ns(fn: Callable[[], Any]) -> float:
    """Best-of-``REPEATS`` nanoseconds per call of ``fn`` (GC off while timing)."""
    fn()  # warm up (first-call imports, caches)
    probe = max(_time_loop(fn, 2_000), 1e-9) / 2_000
    iterations = int(min(MAX_ITERATIONS, max(MIN_ITERATIONS, REPEAT_SECONDS / probe)))
    best = math.inf
    for _ in range(REPEATS):
        gc.collect()
        gc.disable()
        try:
            best = min(best, _time_loop(fn, iterations))
        finally:
            gc.enable()
    return best / iterations * 1e9


def per_call_ns_keys(fn: Callable[[str], Any], prefix: str) -> float:
    """Like :func:`per_call_ns`, for a function of a key that must differ on every call."""
    iterations = MIN_ITERATIONS * 2
    best = math.inf
    for r in range(REPEATS):
        keys = [f"{prefix}:{r}:{i}" for i in range(iterations)]
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            for key in keys:
                fn(key)
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best / iterations * 1e9


def parallel_seconds(call: Callable[..., Any], repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of THREADS threads each doing ``call(time.sleep, NAP)``."""
    best = math.inf
    for _ in range(repeats):
        barrier = threading.Barrier(THREADS + 1)

        def body(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            call(time.sleep, NAP)

        threads = [threading.Thread(target=body) for _ in range(THREADS)]
        for t in threads:
            t.start()
        barrier.wait()
        start = time.perf_counter()
        for t in threads:
            t.join()
        best = min(best, time.perf_counter() - start)
    return best


def _cache_rows(circuit: Circuit) -> list[tuple[str, float]]:
    try:
        from shared.resilience.cache import cached
    except ImportError as exc:
        print(f"note: pipeline rows skipped (shared.resilience.cache.cached not importable: {exc})")
        return []

    def miss(key: str) -> int:
        return cached(key, 60.0, lambda: with_breaker_and_retry(circuit, dependency))

    hit_key = "bench:hit"
    cached(hit_key, 3600.0, dependency)
    return [
        ("pipeline: cache miss -> breaker+retry", per_call_ns_keys(miss, "bench:miss")),
        (
            "pipeline: cache hit",
            per_call_ns(
                functools.partial(
                    cached, hit_key, 3600.0, lambda: with_breaker_and_retry(circuit, dependency)
                )
            ),
        ),
    ]


def main() -> int:
    started = time.perf_counter()
    cb = pybreaker.CircuitBreaker(fail_max=4, reset_timeout=8)
    naive_retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3), reraise=True)
    circuit = Circuit(4, 8.0, name="bench")

    rows: list[tuple[str, float]] = [
        ("bare call", per_call_ns(dependency)),
        ("pybreaker.CircuitBreaker.call", per_call_ns(functools.partial(cb.call, dependency))),
        (
            "naive pybreaker(tenacity(fn))",
            per_call_ns(functools.partial(cb.call, naive_retrying, dependency)),
        ),
        ("ours: breaker", per_call_ns(functools.partial(circuit.call, dependency))),
        (
            "ours: breaker+retry",
            per_call_ns(functools.partial(with_breaker_and_retry, circuit, dependency)),
        ),
    ]
    rows += _cache_rows(circuit)
    values = dict(rows)
    bare = values["bare call"]
    pyb = values["pybreaker.CircuitBreaker.call"]

    print(f"\nsuccess path, best of {REPEATS} (up to {MAX_ITERATIONS:,} calls each)")
    print(f"{'':40} {'ns/call':>10} {'x bare':>8} {'x pybreaker':>12}")
    for label, ns in rows:
        print(f"{label:40} {ns:10.0f} {ns / bare:8.1f} {ns / pyb:12.2f}")

    bare_par = parallel_seconds(lambda fn, *a: fn(*a))
    ours_par = parallel_seconds(Circuit(4, 8.0, name="bench-par").call)
    pyb_par = parallel_seconds(pybreaker.CircuitBreaker(fail_max=4, reset_timeout=8).call, 1)
    print(f"\n{THREADS} threads x {NAP * 1000:.0f} ms through one breaker")
    print(f"{'':40} {'seconds':>10} {'x bare':>8}")
    for label, seconds in (
        ("bare threads", bare_par),
        ("ours: shared Circuit", ours_par),
        ("pybreaker 1.4.1 (lock held during call)", pyb_par),
    ):
        print(f"{label:40} {seconds:10.3f} {seconds / bare_par:8.2f}")

    retry_ratio = values["ours: breaker+retry"] / pyb
    par_ratio = ours_par / bare_par
    checks = [
        (
            "breaker+retry <= 2x pybreaker.call",
            retry_ratio,
            RETRY_VS_PYBREAKER_TARGET,
        ),
        ("shared breaker, 8 threads <= 1.2x bare", par_ratio, CONCURRENCY_TARGET),
    ]
    print()
    missed = False
    for label, ratio, target in checks:
        verdict = "ok" if ratio <= target else "MISSED"
        missed |= ratio > target
        print(f"target {label:45} {ratio:6.2f} (<= {target}) {verdict}")
    print(f"\nbench_resilience finished in {time.perf_counter() - started:.1f} s")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
