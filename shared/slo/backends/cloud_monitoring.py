"""Cloud Monitoring SLIs through the real ``google-cloud-monitoring`` client.

Aggregation happens on the server: every query asks for one alignment period as long as the
window (``ALIGN_DELTA``) and sums all matching series (``REDUCE_SUM``), so each query returns one
point whatever the traffic, and a run makes one call per (ratio filter | distribution) x window.

* ``good_bad_ratio``: ``filter_good`` plus ``filter_valid`` (all events) or ``filter_bad``;
  DELTA or CUMULATIVE count metrics (e.g. ``cloudfunctions.googleapis.com/function/execution_count``
  filtered on ``metric.labels.status``).
* ``latency_percentile``: ``filter`` on a distribution metric (e.g. ``.../execution_times``,
  ``unit: ns``). The summed distribution gives both the percentile and the number of requests at
  or above the threshold (which burn rates need) from one call; a percentile reducer
  (``REDUCE_PERCENTILE_95``) would give only the former.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.resilience.transient import is_transient
from shared.slo.distribution import Histogram, explicit_bounds, exponential_bounds, linear_bounds
from shared.slo.errors import SloError, SourceError
from shared.slo.measurement import Measurement

if TYPE_CHECKING:
    from shared.slo.config import BackendSpec, Slo
    from shared.slo.settings import Settings
    from shared.slo.window import Window

OPTIONS = ("project_id",)
UNITS_TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass(frozen=True, slots=True)
class RatioQuery:
    """Monitoring filters of the good events and of either all valid or all bad events."""

    filter_good: str
    filter_valid: str | None = None
    filter_bad: str | None = None


@dataclass(frozen=True, slots=True)
class DistributionQuery:
    """A Monitoring filter selecting one distribution metric, and the unit of its values."""

    filter: str
    unit: str = "ms"


def parse_query(
    method: str, raw: Mapping[str, Any]
) -> tuple[RatioQuery | DistributionQuery | None, list[str]]:
    """Validate a ``service_level_indicator`` block; returns the query or the problems found."""
    problems: list[str] = []

    def text(key: str, required: bool) -> str | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key}: required, a Cloud Monitoring filter string; got {value!r}")
            return None
        return " ".join(value.split())

    if method == "good_bad_ratio":
        _only(raw, ("filter_good", "filter_valid", "filter_bad"), problems)
        good = text("filter_good", True)
        valid = text("filter_valid", False)
        bad = text("filter_bad", False)
        if (valid is None) == (bad is None) and not any(
            "filter_valid" in p or "filter_bad" in p for p in problems
        ):
            problems.append("filter_valid / filter_bad: give exactly one of the two")
        if problems or good is None:
            return None, problems
        return RatioQuery(good, valid, bad), problems
    _only(raw, ("filter", "unit"), problems)
    flt = text("filter", True)
    unit = raw.get("unit", "ms")
    if unit not in UNITS_TO_MS:
        problems.append(f"unit: must be one of {', '.join(UNITS_TO_MS)}; got {unit!r}")
    if problems or flt is None:
        return None, problems
    return DistributionQuery(flt, str(unit)), problems


def _only(raw: Mapping[str, Any], allowed: tuple[str, ...], problems: list[str]) -> None:
    for key in raw:
        if key not in allowed:
            problems.append(f"{key}: unknown field for this method; allowed: {', '.join(allowed)}")


class CloudMonitoringBackend:
    """Queries ``ListTimeSeries`` of ``project_id``; thread-safe, counts its API calls.

    ``timeout`` (seconds) bounds each query, its retries of transient errors included (the
    client's default retries last up to 90 s, too long for a run inside a 120 s timeout);
    ``retry`` replaces that policy (None: no retries).
    """

    def __init__(
        self, client: Any, project_id: str, *, timeout: float = 20.0, retry: Any = "default"
    ) -> None:
        self._client = client
        self._project = f"projects/{project_id}"
        self._timeout = timeout
        self._retry = retry
        self._lock = threading.Lock()
        self.calls = 0

    def good_bad_ratio(self, slo: Slo, window: Window) -> Measurement:
        query = slo.query
        if not isinstance(query, RatioQuery):
            raise SloError(
                f"SLO {slo.name}: good_bad_ratio needs filter_good/filter_valid|filter_bad"
            )
        good = _sum_values(self._series(query.filter_good, window))
        if query.filter_valid is not None:
            total = _sum_values(self._series(query.filter_valid, window))
            return Measurement(total=total, bad=max(0.0, total - good))
        bad = _sum_values(self._series(query.filter_bad or "", window))
        return Measurement(total=good + bad, bad=bad)

    def latency_percentile(self, slo: Slo, window: Window) -> Measurement:
        query = slo.query
        if not isinstance(query, DistributionQuery) or slo.percentile is None:
            raise SloError(f"SLO {slo.name}: latency_percentile needs a distribution filter")
        histogram = _merged_histogram(self._series(query.filter, window))
        if histogram is None or histogram.total == 0:
            return Measurement(total=0, bad=0)
        to_ms = UNITS_TO_MS[query.unit]
        threshold = (slo.threshold_ms or 0.0) / to_ms
        value = histogram.percentile(slo.percentile)
        return Measurement(
            total=histogram.total,
            bad=histogram.count_at_or_above(threshold),
            value=None if value is None else value * to_ms,
        )

    def histogram(self, filter_: str, window: Window) -> Histogram | None:
        """The distribution metric ``filter_`` selects, summed over ``window`` (None: no points).

        For callers outside the SLIs (the rollout gate compares cohorts with it).
        """
        return _merged_histogram(self._series(filter_, window))

    def _series(self, filter_: str, window: Window) -> list[Any]:
        from google.api_core import exceptions as gexc
        from google.cloud import monitoring_v3

        seconds = max(60, round(window.seconds))
        request = monitoring_v3.ListTimeSeriesRequest(
            name=self._project,
            filter=filter_,
            interval=monitoring_v3.TimeInterval(
                start_time=_timestamp(window.start), end_time=_timestamp(window.end)
            ),
            aggregation=monitoring_v3.Aggregation(
                alignment_period={"seconds": seconds},
                per_series_aligner=monitoring_v3.Aggregation.Aligner.ALIGN_DELTA,
                cross_series_reducer=monitoring_v3.Aggregation.Reducer.REDUCE_SUM,
            ),
            view=monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
        )
        with self._lock:
            self.calls += 1
        retry = self._retry
        if retry == "default":
            from google.api_core.retry import Retry

            retry = Retry(initial=0.2, maximum=2.0, timeout=self._timeout)
        kwargs: dict[str, Any] = {"request": request, "timeout": self._timeout, "retry": retry}
        try:
            return list(self._client.list_time_series(**kwargs))
        except gexc.GoogleAPIError as exc:
            raise SourceError(
                f"ListTimeSeries failed for {filter_!r} over {window.label}: {exc}",
                transient=is_transient(exc),
            ) from exc


def _timestamp(epoch: float) -> dict[str, int]:
    seconds = int(epoch // 1)
    return {"seconds": seconds, "nanos": round((epoch - seconds) * 1e9)}


def _sum_values(series: list[Any]) -> float:
    total = 0.0
    for ts in series:
        for point in ts.points:
            value = point.value
            kind = _which(value, "value")
            if kind == "int64_value":
                total += value.int64_value
            elif kind == "double_value":
                total += value.double_value
            elif kind == "distribution_value":
                total += value.distribution_value.count
    return total


def _merged_histogram(series: list[Any]) -> Histogram | None:
    merged: Histogram | None = None
    for ts in series:
        for point in ts.points:
            dist = point.value.distribution_value
            if not dist.count:
                continue
            histogram = Histogram(
                _bounds(dist.bucket_options), tuple(int(c) for c in dist.bucket_counts)
            )
            merged = histogram if merged is None else merged.merged(histogram)
    return merged


def _which(message: Any, oneof: str) -> str | None:
    """The set member of a oneof, for proto-plus wrappers and raw protobuf messages alike."""
    raw = type(message).pb(message) if hasattr(type(message), "pb") else message
    kind: str | None = raw.WhichOneof(oneof)
    return kind


def _bounds(options: Any) -> tuple[float, ...]:
    kind = _which(options, "options")
    if kind == "linear_buckets":
        b = options.linear_buckets
        return linear_bounds(b.num_finite_buckets, b.width, b.offset)
    if kind == "exponential_buckets":
        b = options.exponential_buckets
        return exponential_bounds(b.num_finite_buckets, b.growth_factor, b.scale)
    if kind == "explicit_buckets":
        return explicit_bounds(options.explicit_buckets.bounds)
    return ()


def open_backend(spec: BackendSpec, settings: Settings) -> CloudMonitoringBackend:
    """A backend on the real Cloud Monitoring API (application default credentials)."""
    from google.cloud import monitoring_v3

    project = spec.options.get("project_id") or settings.project_id
    if not project:
        import google.auth

        _, project = google.auth.default()
    if not project:
        raise SloError(
            f"backend {spec.name}: no project; set backends.{spec.name}.project_id "
            "or GOOGLE_CLOUD_PROJECT"
        )
    return CloudMonitoringBackend(
        monitoring_v3.MetricServiceClient(), project, timeout=settings.monitoring_timeout_s
    )
