"""The embedded local SLI source: the SQLite store of :mod:`shared.slo.local_store`.

Two kinds of ``service_level_indicator``, the local counterparts of the production sources:

* requests, as Cloud Run's request metrics see them: ``function`` or ``functions`` (``*`` for all)
  name the local functions whose request records make the SLI and, for ratios,
  ``error_status_min`` is the first HTTP status counted as an error (default 500). Injected
  (chaos) failures count, as users saw them.
* an emitted OpenTelemetry counter, as Cloud Monitoring receives it (ratios only): ``metric``
  names the instrument, ``good`` the attributes of the good events, ``labels`` (optional) those
  every counted event has, e.g. ``{metric: insights/deliveries, good: {outcome: delivered}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shared.slo.errors import SloError, SourceError
from shared.slo.measurement import Measurement

if TYPE_CHECKING:
    from shared.slo.config import BackendSpec, Slo
    from shared.slo.local_store import LocalStore
    from shared.slo.settings import Settings
    from shared.slo.window import Window

OPTIONS = ("path",)
REQUEST_FIELDS = ("function", "functions", "error_status_min")
METRIC_FIELDS = ("metric", "labels", "good")


@dataclass(frozen=True, slots=True)
class LocalQuery:
    """Which local functions' requests count, and the first status that is an error."""

    functions: tuple[str, ...]
    error_status_min: int = 500


Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class LocalMetricQuery:
    """A counter's events with ``labels`` (all of them) of which those with ``good`` are good."""

    metric: str
    good: Labels
    labels: Labels = ()

    def matches(self, attributes: Mapping[str, object], labels: Labels) -> bool:
        return all(_text(attributes.get(key)) == value for key, value in labels)


def parse_query(
    method: str, raw: Mapping[str, Any]
) -> tuple[LocalQuery | LocalMetricQuery | None, list[str]]:
    """Validate a ``service_level_indicator`` block; returns the query or the problems found."""
    if "metric" in raw:
        return _parse_metric_query(method, raw)
    problems: list[str] = []
    for key in raw:
        if key not in REQUEST_FIELDS:
            allowed = ", ".join(REQUEST_FIELDS)
            problems.append(f"{key}: unknown field; allowed: {allowed} (or metric, good, labels)")
    names: list[object] = []
    if ("function" in raw) == ("functions" in raw):
        problems.append("function / functions: give exactly one (a name, a list of names, or '*')")
    elif "function" in raw:
        names = [raw["function"]]
    else:
        names = raw["functions"] if isinstance(raw["functions"], list) else [None]
    if names and not all(isinstance(n, str) and n for n in names):
        problems.append(f"functions: must be non-empty names; got {names!r}")
    status = raw.get("error_status_min", 500)
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        problems.append(f"error_status_min: must be an integer 400..599; got {status!r}")
    if problems:
        return None, problems
    return LocalQuery(tuple(str(n) for n in names), int(status)), problems


def _parse_metric_query(
    method: str, raw: Mapping[str, Any]
) -> tuple[LocalMetricQuery | None, list[str]]:
    problems = [
        f"{key}: unknown field; allowed with metric: {', '.join(METRIC_FIELDS)}"
        for key in raw
        if key not in METRIC_FIELDS
    ]
    if method != "good_bad_ratio":
        problems.append(f"metric: a counter makes a good_bad_ratio SLI only; method is {method}")
    metric = raw["metric"]
    if not isinstance(metric, str) or not metric:
        problems.append(f"metric: must be an instrument name; got {metric!r}")
    good = _labels("good", raw.get("good"), problems)
    labels = _labels("labels", raw.get("labels", {}), problems)
    if not good:
        problems.append("good: give the attributes of the good events, e.g. {outcome: delivered}")
    if problems:
        return None, problems
    return LocalMetricQuery(str(metric), good, labels), problems


def _labels(field: str, raw: object, problems: list[str]) -> Labels:
    if not isinstance(raw, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int | bool) for k, v in raw.items()
    ):
        problems.append(f"{field}: must map attribute names to values; got {raw!r}")
        return ()
    return tuple(sorted((k, _text(v)) for k, v in raw.items()))


def _text(value: object) -> str:
    # YAML reads `true` as a bool where the attribute may be the text "true": compare as text.
    return str(value).lower() if isinstance(value, bool) else str(value)


class LocalBackend:
    """Reads SLIs from a :class:`LocalStore`."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.calls = 0

    def good_bad_ratio(self, slo: Slo, window: Window) -> Measurement:
        if isinstance(slo.query, LocalMetricQuery):
            return self._counter_ratio(slo.query, window)
        query = _query(slo)
        counts = self._run(lambda: self.store.counts(
            query.functions, window.start, window.end, error_status_min=query.error_status_min
        ))  # fmt: skip
        return Measurement(total=counts.total, bad=counts.bad)

    def latency_percentile(self, slo: Slo, window: Window) -> Measurement:
        query = _query(slo)
        if slo.percentile is None or slo.threshold_ms is None:
            raise SloError(f"SLO {slo.name}: latency_percentile needs percentile and threshold_ms")
        threshold, q = slo.threshold_ms, slo.percentile
        summary = self._run(lambda: self.store.latency_summary(
            query.functions, window.start, window.end, threshold_ms=threshold, q=q
        ))  # fmt: skip
        return Measurement(total=summary.total, bad=summary.slow, value=summary.percentile_ms)

    def _counter_ratio(self, query: LocalMetricQuery, window: Window) -> Measurement:
        totals = self._run(lambda: self.store.counter_totals(query.metric, window.start,
                                                             window.end))  # fmt: skip
        total = good = 0.0
        for attributes, value in totals:
            if query.matches(attributes, query.labels):
                total += value
                if query.matches(attributes, query.good):
                    good += value
        return Measurement(total=total, bad=total - good)

    def _run(self, fn: Any) -> Any:
        import sqlite3

        self.calls += 1
        try:
            return fn()
        except sqlite3.Error as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            raise SourceError(f"local store {self.store.path}: {exc}", transient=busy) from exc


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ascending values, interpolating between ranks."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    position = (len(sorted_values) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    fraction = position - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


def _query(slo: Slo) -> LocalQuery:
    if not isinstance(slo.query, LocalQuery):
        raise SloError(f"SLO {slo.name}: this SLI needs function/functions (requests)")
    return slo.query


def open_backend(spec: BackendSpec, settings: Settings) -> LocalBackend:
    """A backend on the SQLite file of ``backends.<name>.path`` or ``LOCAL_METRICS_DB``."""
    from shared.slo.local_store import LocalStore

    path = spec.options.get("path") or settings.local_metrics_db
    if not path:
        raise SloError(f"backend {spec.name}: set LOCAL_METRICS_DB or backends.{spec.name}.path")
    return LocalBackend(LocalStore(path))
