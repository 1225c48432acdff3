"""SLO monitor evaluation against the fake Cloud Monitoring peer (real client, real gRPC).

100 SLOs (50 error-rate ratios with two filters, 50 p95 latency distributions), each measured over
the SRE Workbook's five windows (5m, 30m, 1h, 6h, 3d), once with the run's thread pool and once
serially (the baseline, same run). Then the same SLOs with only the 5-minute window, and again
with 10x the data points, to show that calls grow with SLIs x windows and not with data; and with
5 ms of server latency per call, where the run's thread pool pays off (in-process, the client and
the fake share one GIL, so threads gain little).

Each figure is the best of two runs. Targets: the concurrent run evaluates 100 SLOs in < 2 s;
the API call count equals sum(filters per SLI) x windows exactly and does not change with 10x
data.
Run: ``python -m bench.bench_slo``.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import Any

from shared.slo.backends.cloud_monitoring import CloudMonitoringBackend
from shared.slo.compute import compute
from shared.slo.config import MonitorConfig, parse_config
from tests.slo.fake_monitoring import FakeMetricService

SLOS = 100
TICK = 1_795_694_700.0
TARGET_S = 2.0


def ratio_filters(i: int) -> tuple[str, str]:
    base = (
        'metric.type = "cloudfunctions.googleapis.com/function/execution_count" '
        f'AND resource.labels.function_name = "fn{i}"'
    )
    return base + ' AND metric.labels.status = "ok"', base


def latency_filter(i: int) -> str:
    return (
        'metric.type = "cloudfunctions.googleapis.com/function/execution_times" '
        f'AND resource.labels.function_name = "fn{i}"'
    )


def build_config(windows: bool) -> MonitorConfig:
    slos: list[dict[str, Any]] = []
    for i in range(SLOS):
        if i % 2 == 0:
            good, valid = ratio_filters(i)
            slos.append(
                {
                    "name": f"slo{i}-errors",
                    "backend": "cm",
                    "method": "good_bad_ratio",
                    "goal": 0.99,
                    "service_level_indicator": {"filter_good": good, "filter_valid": valid},
                }
            )
        else:
            slos.append(
                {
                    "name": f"slo{i}-latency",
                    "backend": "cm",
                    "method": "latency_percentile",
                    "percentile": 95,
                    "threshold_ms": 900,
                    "service_level_indicator": {"filter": latency_filter(i), "unit": "ns"},
                }
            )
    doc: dict[str, Any] = {"backends": {"cm": {"type": "cloud_monitoring", "project_id": "bench"}},
                           "slos": slos}  # fmt: skip
    if not windows:
        doc["error_budget_policies"] = {"default": []}
    return parse_config(doc)


def feed(fake: FakeMetricService, points_per_series: int) -> None:
    """Points spread over the last 3 days, with errors and slow requests in some SLIs."""
    span = 259_200.0
    for i in range(SLOS):
        times = [TICK - span + span * (k + 1) / points_per_series for k in range(points_per_series)]
        if i % 2 == 0:
            good, valid = ratio_filters(i)
            fake.add_counts(valid, [(t, 10) for t in times])
            every = 5 if i % 4 == 0 else 50  # a quarter of the SLOs run at 2% errors
            fake.add_counts(good, [(t, 10 if k % every else 9) for k, t in enumerate(times)])
        else:
            every = 5 if i % 4 == 1 else 25  # a quarter of them: 20% slow requests
            samples = [(t, 1.5e9 if k % every == 0 else 2e8) for k, t in enumerate(times)]
            fake.add_samples(latency_filter(i), samples)


def expected_calls(config: MonitorConfig) -> int:
    return sum((2 if s.method == "good_bad_ratio" else 1) * len(s.windows_s) for s in config.slos)


def measure(
    points: int, windows: bool, workers: int, latency_s: float = 0.0
) -> tuple[float, int, int, list[str]]:
    fake = FakeMetricService().start()
    fake.delay(latency_s)
    client = fake.client()
    try:
        feed(fake, points)
        config = build_config(windows)
        source = CloudMonitoringBackend(client, "bench", timeout=10.0, retry=None)
        source.latency_percentile(config.slos[1], _warm_window())  # channel warm-up
        warm = source.calls
        started = time.perf_counter()
        results = compute(config.slos, lambda _: source, TICK, max_workers=workers)
        elapsed = time.perf_counter() - started
        counts = Counter(r.status for r in results)
        statuses = [f"{k}:{v}" for k, v in sorted(counts.items())]
        statuses.append(f"burn-alerting:{sum(1 for r in results if r.fired)}")
        return elapsed, source.calls - warm, expected_calls(config), statuses
    finally:
        client.transport.close()
        fake.stop()


def _warm_window() -> Any:
    from shared.slo.window import Window

    return Window.ending_at(TICK, 300)


def main() -> int:
    failures: list[str] = []
    rows = []
    for label, points, windows, workers, latency_s in (
        ("100 SLOs x 5 windows, 8 threads", 288, True, 8, 0.0),
        ("100 SLOs x 5 windows, serial (baseline)", 288, True, 1, 0.0),
        ("100 SLOs x 1 window, 8 threads", 288, False, 8, 0.0),
        ("100 SLOs x 5 windows, 10x points", 2880, True, 8, 0.0),
        ("+5 ms server latency, 8 threads", 288, True, 8, 0.005),
        ("+5 ms server latency, serial", 288, True, 1, 0.005),
    ):
        # Best of two: the machine is shared; the call count is the same in both.
        runs = [measure(points, windows, workers, latency_s) for _ in range(2)]
        elapsed, calls, expected, statuses = min(runs)
        rows.append((label, elapsed, calls, expected, statuses))
        if calls != expected:
            failures.append(f"{label}: {calls} API calls, expected {expected}")
        if any(s.startswith("error") for s in statuses):
            failures.append(f"{label}: some SLIs failed")
    print(f"{'scenario':42} {'wall s':>8} {'calls':>6} {'expected':>8}  outcomes")
    for label, elapsed, calls, expected, statuses in rows:
        print(f"{label:42} {elapsed:8.3f} {calls:6d} {expected:8d}  {','.join(statuses)}")
    concurrent, serial, single, dense, slow_pool, slow_serial = rows
    print(f"\nconcurrent vs serial, in-process peer: {serial[1] / concurrent[1]:.2f}x")
    print(f"concurrent vs serial, 5 ms per call: {slow_serial[1] / slow_pool[1]:.2f}x")
    print(f"calls 5 windows / 1 window: {concurrent[2] / single[2]:.1f}x (windows ratio 5.0x)")
    print(f"calls 10x points / 1x points: {dense[2] / concurrent[2]:.1f}x (target 1.0x)")
    print(f"per call: {concurrent[1] / concurrent[2] * 1000:.2f} ms wall (8 threads)")
    if concurrent[1] >= TARGET_S:
        failures.append(f"100 SLOs took {concurrent[1]:.2f} s (target < {TARGET_S} s)")
    if dense[2] != concurrent[2]:
        failures.append("API calls grew with the number of data points")
    for failure in failures:
        print(f"MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
