"""Cohort samples from the local request store and from Cloud Monitoring (the fake peer)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shared.canary.rollout import start
from shared.canary.sources import (
    METRIC_TYPE,
    LocalCohorts,
    MonitoringCohorts,
    cohort_filter,
    expand,
)
from shared.obs.requests import RequestRecord
from shared.slo.backends.cloud_monitoring import CloudMonitoringBackend
from shared.slo.distribution import Histogram
from shared.slo.local_store import LocalStore
from tests.slo.fake_monitoring import REQUEST_LATENCIES_BUCKETS, FakeMetricService

T = 1_800_000_000.0
ROLLOUT = start("ask-model", service="graphAsk", stable="v1", candidate="v2", now=T - 600)


def _record(cohort: str, ms: float, status: int = 200, at: float = T - 10,
            function: str = "graphAsk") -> RequestRecord:  # fmt: skip
    return RequestRecord(function, "POST", "/graph_ask", status, ms, "t", False, at, cohort)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    db = LocalStore(tmp_path / "metrics.db")
    yield db
    db.close()


def test_local_cohorts(store: LocalStore) -> None:
    store.append_many([
        _record("candidate", 300.0), _record("candidate", 500.0, 503),
        _record("stable", 100.0), _record("stable", 120.0), _record("stable", 110.0, 429),
        _record("candidate", 900.0, at=T),  # the window is half-open
        _record("candidate", 900.0, function="insights"),  # another service
        _record("", 900.0),  # served outside any rollout
    ])  # fmt: skip
    source = LocalCohorts(store)
    candidate = source.sample(ROLLOUT, "candidate", T - 60, T)
    assert (sorted(candidate.latencies), candidate.errors) == ([0.3, 0.5], 1)
    stable = source.sample(ROLLOUT, "stable", T - 60, T)
    assert (stable.requests, stable.errors) == (3, 0)  # a 429 is an answer, not an error


def test_a_store_written_before_cohorts_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE requests (id INTEGER PRIMARY KEY, function TEXT NOT NULL, method TEXT"
            " NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, latency_ms REAL NOT NULL,"
            " trace_id TEXT, injected INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL)"
        )
        conn.execute("INSERT INTO requests (function, method, path, status, latency_ms, at)"
                     " VALUES ('graphAsk', 'POST', '/', 200, 5.0, ?)", (T - 5,))  # fmt: skip
    store = LocalStore(path)
    store.append(_record("candidate", 7.0))
    assert LocalCohorts(store).sample(ROLLOUT, "candidate", T - 60, T).latencies == (0.007,)
    assert LocalCohorts(store).sample(ROLLOUT, "stable", T - 60, T).requests == 0
    assert store.counts(["graphAsk"], T - 60, T).total == 2
    store.close()


def test_filters() -> None:
    assert cohort_filter("ask-model", "candidate") == (
        f'metric.type = "{METRIC_TYPE}" AND metric.labels.rollout = "ask-model" '
        'AND metric.labels.cohort = "candidate"'
    )
    assert cohort_filter("ask-model", "stable", errors_only=True).endswith(
        'metric.labels.cohort = "stable" AND metric.labels.outcome = "error"'
    )
    assert METRIC_TYPE == "workload.googleapis.com/rollout/latency"


def test_monitoring_cohorts_against_the_fake_peer() -> None:
    fake = FakeMetricService().start()
    try:
        slow = [(T - 100 + i, 400.0 + i % 5) for i in range(60)]
        fast = [(T - 300 + i, 100.0 + i % 5) for i in range(200)]
        fake.add_samples(cohort_filter("ask-model", "candidate"), slow, REQUEST_LATENCIES_BUCKETS)
        fake.add_samples(cohort_filter("ask-model", "candidate", errors_only=True), slow[:6],
                         REQUEST_LATENCIES_BUCKETS)  # fmt: skip
        fake.add_samples(cohort_filter("ask-model", "stable"), fast, REQUEST_LATENCIES_BUCKETS)
        made: list[int] = []

        def backend() -> CloudMonitoringBackend:
            made.append(1)
            return CloudMonitoringBackend(fake.client(), "demo-project", timeout=5)

        source = MonitoringCohorts(backend)
        candidate = source.sample(ROLLOUT, "candidate", T - 600, T)
        stable = source.sample(ROLLOUT, "stable", T - 600, T)
        assert (candidate.requests, candidate.errors) == (60, 6)
        assert (stable.requests, stable.errors) == (200, 0)
        # Bucket midpoints: the 1.4x layout puts 400 ms in (289, 405] and 100 ms in (75, 105].
        assert min(candidate.latencies) > 0.3
        assert max(candidate.latencies) < 0.45
        assert min(stable.latencies) > 0.07
        assert max(stable.latencies) < 0.11
        filters = [r.filter for r in fake.requests]
        assert filters == [
            cohort_filter("ask-model", "candidate"),
            cohort_filter("ask-model", "candidate", errors_only=True),
            cohort_filter("ask-model", "stable"),
            cohort_filter("ask-model", "stable", errors_only=True),
        ]
        assert all(r.name == "projects/demo-project" for r in fake.requests)
        assert made == [1]  # one client for the step's life, made on first use
    finally:
        fake.stop()


def test_expand_scales_large_distributions_down() -> None:
    histogram = Histogram((10.0, 20.0), (0, 30_000, 10_000, 0))
    values = expand(histogram, limit=400)
    assert len(values) == 400
    assert values.count(15.0) == 300  # the shape is kept: 3 to 1
    assert set(values) == {15.0, 20.0}  # the overflow bucket stands at its lower edge
    assert expand(replace(histogram, counts=(4, 0, 0, 0))) == (5.0,) * 4
