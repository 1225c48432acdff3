"""Where the gate reads each cohort's requests: :class:`CohortSource` and its two providers.

* :class:`LocalCohorts`: the local stack's SQLite request store (``LOCAL_METRICS_DB``), whose
  records carry the cohort that served them (``X-Rollout-Cohort``, kept by ``shared.obs``).
* :class:`MonitoringCohorts`: Cloud Monitoring in production. The service records every
  request of a rollout in the OpenTelemetry histogram :data:`METRIC_NAME` (milliseconds;
  attributes ``rollout``, ``cohort``, ``outcome`` = ``ok`` | ``error``), exported as
  ``workload.googleapis.com/rollout/latency``; the gate sums one cohort's distribution over
  the window (every outcome for latency, ``outcome = "error"`` for the failures).

Samples are seconds. A distribution has no single requests, so each bucket stands for its
count of requests at the bucket's midpoint (tied ranks, which Mann-Whitney corrects for); above
:data:`MAX_EXPANDED` requests the counts are scaled down in proportion, which keeps the shape
and only makes the test more conservative.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from shared.canary.cohort import Cohort
from shared.canary.compare import CohortSample
from shared.canary.errors import SourceUnavailable
from shared.canary.rollout import Rollout

if TYPE_CHECKING:
    from shared.slo.backends.cloud_monitoring import CloudMonitoringBackend
    from shared.slo.distribution import Histogram
    from shared.slo.local_store import LocalStore

METRIC_NAME: Final = "rollout/latency"
METRIC_TYPE: Final = f"workload.googleapis.com/{METRIC_NAME}"
MAX_EXPANDED: Final = 20_000


class CohortSource(Protocol):
    """One cohort's requests of a rollout's service over ``[start, end)`` (epoch seconds)."""

    def sample(
        self, rollout: Rollout, cohort: Cohort, start: float, end: float
    ) -> CohortSample: ...


class LocalCohorts:
    """Cohort samples from the local request store; the rollout's ``service`` is the record
    name (``graphAsk``)."""

    def __init__(self, store: LocalStore, *, error_status_min: int = 500) -> None:
        self.store = store
        self._error_status_min = error_status_min

    def sample(self, rollout: Rollout, cohort: Cohort, start: float, end: float) -> CohortSample:
        try:
            found = self.store.cohort_requests(
                [rollout.service], cohort, start, end, error_status_min=self._error_status_min
            )
        except sqlite3.Error as exc:
            raise SourceUnavailable(f"local store {self.store.path}: {exc}") from exc
        return CohortSample(tuple(ms / 1000.0 for ms in found.latencies_ms), found.bad)


def cohort_filter(rollout: str, cohort: Cohort, *, errors_only: bool = False) -> str:
    """The Monitoring filter of one cohort's latency distribution (or of its failures)."""
    parts = [
        f'metric.type = "{METRIC_TYPE}"',
        f'metric.labels.rollout = "{rollout}"',
        f'metric.labels.cohort = "{cohort}"',
    ]
    if errors_only:
        parts.append('metric.labels.outcome = "error"')
    return " AND ".join(parts)


class MonitoringCohorts:
    """Cohort samples from Cloud Monitoring (two ``ListTimeSeries`` calls per cohort).

    ``backend`` makes the client on first use: a monitor with no running rollout never needs
    one (nor credentials for it).
    """

    def __init__(self, backend: Callable[[], CloudMonitoringBackend]) -> None:
        self._factory = backend
        self._backend: CloudMonitoringBackend | None = None
        self._lock = threading.Lock()

    def sample(self, rollout: Rollout, cohort: Cohort, start: float, end: float) -> CohortSample:
        from shared.slo.errors import SloError
        from shared.slo.window import Window

        window = Window(start, end)
        try:
            backend = self._client()
            latency = backend.histogram(cohort_filter(rollout.name, cohort), window)
            failed = backend.histogram(
                cohort_filter(rollout.name, cohort, errors_only=True), window
            )
        except SloError as exc:
            raise SourceUnavailable(f"Cloud Monitoring: {exc}") from exc
        latencies = expand(latency) if latency is not None else ()
        scale = len(latencies) / latency.total if latency is not None and latency.total else 1.0
        errors = round(failed.total * scale) if failed is not None else 0
        return CohortSample(tuple(ms / 1000.0 for ms in latencies), min(errors, len(latencies)))

    def _client(self) -> CloudMonitoringBackend:
        from shared.slo.errors import SourceError

        with self._lock:
            if self._backend is None:
                try:
                    self._backend = self._factory()
                except Exception as exc:  # no credentials, no project: this rollout's problem
                    raise SourceError(f"no Monitoring client: {exc}", transient=False) from exc
            return self._backend


def expand(histogram: Histogram, limit: int = MAX_EXPANDED) -> tuple[float, ...]:
    """One value per counted request at its bucket's midpoint (ms), at most about ``limit``."""
    total = histogram.total
    factor = min(1.0, limit / total) if total else 1.0
    values: list[float] = []
    for i, count in enumerate(histogram.counts):
        n = round(count * factor)
        if n:
            values.extend([_midpoint(histogram, i)] * n)
    return tuple(values)


def _midpoint(histogram: Histogram, i: int) -> float:
    lower, upper = histogram.bucket(i)
    if math.isinf(lower):
        return max(upper, 0.0) / 2
    if math.isinf(upper):
        return lower  # the overflow's lower edge: the largest value known
    return (lower + upper) / 2
