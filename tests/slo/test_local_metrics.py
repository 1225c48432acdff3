"""The local metric pipe: OpenTelemetry instruments → LocalMetricExporter → SQLite → local SLIs.

The SDK and its periodic reader are real; only the export interval is replaced by flushes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from shared.slo.backends.local import LocalBackend
from shared.slo.config import parse_config
from shared.slo.local_metrics import LocalMetricExporter
from shared.slo.local_store import LocalStore
from shared.slo.window import Window

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    db = LocalStore(tmp_path / "metrics.db")
    yield db
    db.close()


def provider(store: LocalStore, service: str = "graph-ask") -> MeterProvider:
    reader = PeriodicExportingMetricReader(
        LocalMetricExporter(store), export_interval_millis=3_600_000
    )
    return MeterProvider(
        resource=Resource.create({"service.name": service}), metric_readers=[reader]
    )


def delivery_slo(**sli: object) -> object:
    doc = {
        "backends": {"local": {}},
        "slos": [{"name": "insights-delivery", "backend": "local", "method": "good_bad_ratio",
                  "goal": 0.99, "service_level_indicator": {
                      "metric": "insights/deliveries", "good": {"outcome": "delivered"}, **sli}}],
    }  # fmt: skip
    (slo,) = parse_config(doc).slos
    return slo


def test_counters_are_stored_as_deltas_so_each_increase_counts_once(store: LocalStore) -> None:
    meters = provider(store)
    counter = meters.get_meter("t").create_counter("insights/deliveries")
    counter.add(3, {"outcome": "delivered"})
    counter.add(1, {"outcome": "failed"})
    meters.force_flush()
    counter.add(2, {"outcome": "delivered"})
    meters.force_flush()
    meters.force_flush()  # nothing new: no point
    meters.shutdown()

    totals = {
        attrs["outcome"]: value
        for attrs, value in store.counter_totals("insights/deliveries", 0, 4e9)
    }
    assert totals == {"delivered": 5.0, "failed": 1.0}
    rows = (
        store._connection()
        .execute("SELECT kind, service, value FROM metric_points ORDER BY id")
        .fetchall()
    )
    assert rows == [
        ("counter", "graph-ask", 3.0), ("counter", "graph-ask", 1.0), ("counter", "graph-ask", 2.0)
    ]  # fmt: skip


def test_histograms_and_gauges_keep_their_shape(store: LocalStore) -> None:
    meters = provider(store)
    meter = meters.get_meter("t")
    histogram = meter.create_histogram("http.server.request.duration", unit="s")
    for seconds in (0.004, 0.02, 0.3):
        histogram.record(seconds, {"function": "graphAsk"})
    meter.create_up_down_counter("queue.depth").add(4)
    meters.force_flush()
    meters.shutdown()

    import json

    rows = {
        name: (kind, value, histogram)
        for name, kind, value, histogram in store._connection().execute(
            "SELECT name, kind, value, histogram FROM metric_points"
        )
    }
    kind, count, shape = rows["http.server.request.duration"]
    assert (kind, count) == ("histogram", 3.0)
    buckets = json.loads(shape)
    assert sum(buckets["bucket_counts"]) == 3
    assert buckets["sum"] == pytest.approx(0.324)
    assert len(buckets["bucket_counts"]) == len(buckets["bounds"]) + 1
    assert rows["queue.depth"][:2] == ("gauge", 4.0)


def test_the_local_backend_judges_the_counter_across_processes_within_the_window(
    store: LocalStore,
) -> None:
    first, second = provider(store), provider(store, "graph-ask-2")
    for meters, delivered, failed in ((first, 60, 1), (second, 39, 0)):
        counter = meters.get_meter("t").create_counter("insights/deliveries")
        counter.add(delivered, {"outcome": "delivered"})
        counter.add(failed, {"outcome": "failed"})
        meters.force_flush()
        meters.shutdown()
    (_, _, _, end), *_ = (
        store._connection().execute('SELECT name, kind, start, "end" FROM metric_points').fetchall()
    )

    backend = LocalBackend(store)
    inside = Window(start=end - 300, end=end + 1)
    measured = backend.good_bad_ratio(delivery_slo(), inside)  # type: ignore[arg-type]
    assert (measured.total, measured.bad) == (100.0, 1.0)
    later = Window(start=end + 1, end=end + 301)
    assert backend.good_bad_ratio(delivery_slo(), later).total == 0  # type: ignore[arg-type]
    only_other = delivery_slo(labels={"region": "eu"})
    assert backend.good_bad_ratio(only_other, inside).total == 0  # type: ignore[arg-type]


def test_telemetry_names_the_exporter_and_flushes_it_at_exit(tmp_path: Path) -> None:
    """TELEMETRY_METRIC_SINK wires the exporter next to the configured one, as the local stack
    does; the process's exit flushes what it counted."""
    db = tmp_path / "metrics.db"
    script = textwrap.dedent(
        """
        from shared.obs import telemetry
        telemetry.start("graph-ask", wait=True)
        counter = telemetry.meter("t").create_counter("insights/deliveries")
        counter.add(7, {"outcome": "delivered"})
        """
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "LOCAL_METRICS_DB": str(db),
        "TELEMETRY_EXPORTER": "none",
        "TELEMETRY_METRIC_SINK": "shared.slo.local_metrics:exporter_from_env",
    }
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    reader = LocalStore(db)
    try:
        assert reader.counter_totals("insights/deliveries", 0, 4e9) == [
            ({"outcome": "delivered"}, 7.0)
        ]
    finally:
        reader.close()


def test_a_sink_that_cannot_be_loaded_leaves_telemetry_running(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from shared.obs import telemetry
        telemetry.start("graph-ask", wait=True)
        telemetry.meter("t").create_counter("c").add(1)
        print("served")
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TELEMETRY_EXPORTER": "none",
           "TELEMETRY_METRIC_SINK": "no_such_module:exporter"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "served"
    assert "TELEMETRY_METRIC_SINK=no_such_module:exporter could not be loaded" in done.stderr
