"""The embedded local SLI source: request records in SQLite (see :mod:`shared.slo.local_store`).

``service_level_indicator`` names the local functions whose requests make the SLI (``function``
or ``functions``; ``*`` for all) and, for ratios, the first HTTP status counted as an error
(``error_status_min``, default 500). Injected (chaos) failures count, as users saw them.
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


@dataclass(frozen=True, slots=True)
class LocalQuery:
    """Which local functions' requests count, and the first status that is an error."""

    functions: tuple[str, ...]
    error_status_min: int = 500


def parse_query(method: str, raw: Mapping[str, Any]) -> tuple[LocalQuery | None, list[str]]:
    """Validate a ``service_level_indicator`` block; returns the query or the problems found."""
    problems: list[str] = []
    for key in raw:
        if key not in ("function", "functions", "error_status_min"):
            problems.append(f"{key}: unknown field; allowed: function, functions, error_status_min")
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


class LocalBackend:
    """Reads SLIs from a :class:`LocalStore`."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store
        self.calls = 0

    def good_bad_ratio(self, slo: Slo, window: Window) -> Measurement:
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
        raise SloError(f"SLO {slo.name}: the local backend needs function/functions")
    return slo.query


def open_backend(spec: BackendSpec, settings: Settings) -> LocalBackend:
    """A backend on the SQLite file of ``backends.<name>.path`` or ``LOCAL_METRICS_DB``."""
    from shared.slo.local_store import LocalStore

    path = spec.options.get("path") or settings.local_metrics_db
    if not path:
        raise SloError(f"backend {spec.name}: set LOCAL_METRICS_DB or backends.{spec.name}.path")
    return LocalBackend(LocalStore(path))
