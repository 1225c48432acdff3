"""A SQLite store of request records and metric points: the local stand-in for Cloud Monitoring.

Every local function (run by functions-framework, one process each) appends one row per request
through :func:`batch_writer_from_env` (named by ``REQUEST_SINK`` in the local stack's environment),
as Cloud Run observes every request it serves; the OpenTelemetry metrics the functions emit land
in ``metric_points`` through :mod:`shared.slo.local_metrics`, as they land in Cloud Monitoring
when deployed. The ``local`` SLI backend reads both back. WAL mode and a busy timeout make
concurrent writers in several processes and threads safe; each thread has its own connection.

Injected failures (chaos) are stored with ``injected = 1`` and *count* in SLIs: an SLO measures
what users saw. The flag is kept so reports can split injected from organic failures.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from shared.lazy import Memo
from shared.resilience.retries import retry
from shared.settings import Env

logger = logging.getLogger("shared.slo.local_store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    function TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    trace_id TEXT,
    injected INTEGER NOT NULL DEFAULT 0,
    at REAL NOT NULL,
    cohort TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS requests_function_at ON requests (function, at);
CREATE INDEX IF NOT EXISTS requests_at ON requests (at);
CREATE TABLE IF NOT EXISTS metric_points (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    attributes TEXT NOT NULL,
    start REAL NOT NULL,
    "end" REAL NOT NULL,
    value REAL NOT NULL,
    histogram TEXT
);
CREATE INDEX IF NOT EXISTS metric_points_name_end ON metric_points (name, "end");
"""

#: ``metric_points.kind``: a counter's increase over [start, end] (delta), a gauge's (or an
#: up-down counter's) value at ``end``, or a histogram's count over [start, end] with its sum,
#: bounds and bucket counts as JSON in ``histogram``.
MetricKind = Literal["counter", "gauge", "histogram"]
AttributeValue = str | bool | int | float

ANY_FUNCTION = "*"


class RequestRecordLike(Protocol):
    """The fields of ``shared.obs.requests.RequestRecord`` this store keeps (``at``: epoch s)."""

    @property
    def function(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def trace_id(self) -> str | None: ...
    @property
    def injected(self) -> bool: ...
    @property
    def at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Counts:
    """Requests in a window: all, failed (status >= the error threshold), failed by injection."""

    total: int
    bad: int
    injected_bad: int


@dataclass(frozen=True, slots=True)
class CohortRequests:
    """One rollout cohort's requests in a window: every latency (ms) and the failed count."""

    latencies_ms: tuple[float, ...]
    bad: int


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Requests in a window, those at or above a threshold, and a percentile (ms)."""

    total: int
    slow: int
    percentile_ms: float | None


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One exported point of one OpenTelemetry metric stream (times: epoch seconds)."""

    name: str
    kind: MetricKind
    service: str
    attributes: Mapping[str, AttributeValue]
    start: float
    end: float
    value: float
    histogram: Mapping[str, object] | None = None


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class LocalStore:
    """Request records in the SQLite file at ``path`` (created with its schema on first use)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = str(path)
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._schema_lock = threading.Lock()
        self._schema_ready = False

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self._timeout * 1000)}")
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                # Switching a new file to WAL can answer "database is locked" at once, without
                # waiting on busy_timeout, when several connections (threads or the local
                # functions' processes) open it together: retry that switch until the timeout.
                retry(
                    lambda: conn.execute("PRAGMA journal_mode = WAL"),
                    attempts=1000,
                    base=0.005,
                    cap=0.1,
                    deadline=self._timeout,
                    retry_on=_is_locked,
                    name="local_store.wal",
                )
            conn.execute("PRAGMA synchronous = NORMAL")
            with self._schema_lock:
                if not self._schema_ready:
                    conn.executescript(_SCHEMA)
                    _add_cohort_column(conn)
                    self._schema_ready = True
            self._local.conn = conn
        return conn

    def append(self, record: RequestRecordLike) -> None:
        """Store one request record."""
        self.append_many([record])

    def append_many(self, records: Iterable[RequestRecordLike]) -> None:
        """Store records in one transaction; a record without a ``cohort`` served no rollout."""
        rows = [
            (r.function, r.method, r.path, int(r.status), float(r.latency_ms), r.trace_id,
             int(bool(r.injected)), float(r.at), str(getattr(r, "cohort", "") or ""))
            for r in records
        ]  # fmt: skip
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO requests (function, method, path, status, latency_ms, trace_id,"
                " injected, at, cohort) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def append_points(self, points: Iterable[MetricPoint]) -> None:
        """Store metric points in one transaction."""
        rows = [
            (p.name, p.kind, p.service, _attributes_json(p.attributes), float(p.start),
             float(p.end), float(p.value), None if p.histogram is None else json.dumps(p.histogram))
            for p in points
        ]  # fmt: skip
        if not rows:
            return
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                'INSERT INTO metric_points (name, kind, service, attributes, start, "end", value,'
                " histogram) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def counter_totals(
        self, name: str, start: float, end: float
    ) -> list[tuple[dict[str, AttributeValue], float]]:
        """The increase of counter ``name`` per attribute set, summed over the points whose
        interval ends in ``(start, end]`` (each point is the increase over its own interval, so
        every increase counts in exactly one window)."""
        rows = self._connection().execute(
            "SELECT attributes, SUM(value) FROM metric_points"
            ' WHERE name = ? AND kind = ? AND "end" > ? AND "end" <= ? GROUP BY attributes',
            (name, "counter", start, end),
        )
        return [(json.loads(attributes), float(total)) for attributes, total in rows]

    def counts(
        self, functions: Sequence[str], start: float, end: float, *, error_status_min: int = 500
    ) -> Counts:
        """Requests of ``functions`` (``*``: all) with ``start <= at < end`` (epoch seconds)."""
        where, params = _where(functions, start, end)
        row = (
            self._connection()
            .execute(
                "SELECT COUNT(*), COALESCE(SUM(status >= ?), 0),"
                f" COALESCE(SUM(status >= ? AND injected), 0) FROM requests WHERE {where}",
                (error_status_min, error_status_min, *params),
            )
            .fetchone()
        )
        return Counts(total=int(row[0]), bad=int(row[1]), injected_bad=int(row[2]))

    def latency_summary(
        self, functions: Sequence[str], start: float, end: float, *, threshold_ms: float, q: float
    ) -> LatencySummary:
        """Count, count at or above ``threshold_ms`` and the ``q``-th percentile (interpolated
        between closest ranks) of the matching requests, computed inside SQLite."""
        where, params = _where(functions, start, end)
        conn = self._connection()
        total, slow = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM(latency_ms >= ?), 0) FROM requests WHERE {where}",
            (threshold_ms, *params),
        ).fetchone()
        if not total:
            return LatencySummary(0, 0, None)
        position = (total - 1) * q / 100
        low = int(position)
        rows = conn.execute(
            f"SELECT latency_ms FROM requests WHERE {where} ORDER BY latency_ms LIMIT 2 OFFSET ?",
            (*params, low),
        ).fetchall()
        lower = float(rows[0][0])
        upper = float(rows[1][0]) if len(rows) > 1 else lower
        return LatencySummary(int(total), int(slow), lower + (upper - lower) * (position - low))

    def latencies(self, functions: Sequence[str], start: float, end: float) -> list[float]:
        """Latencies (ms) of the matching requests, ascending."""
        where, params = _where(functions, start, end)
        rows = self._connection().execute(
            f"SELECT latency_ms FROM requests WHERE {where} ORDER BY latency_ms", params
        )
        return [float(r[0]) for r in rows]

    def cohort_requests(
        self,
        functions: Sequence[str],
        cohort: str,
        start: float,
        end: float,
        *,
        error_status_min: int = 500,
    ) -> CohortRequests:
        """Latencies and failures of the requests of ``functions`` a rollout ``cohort`` served."""
        where, params = _where(functions, start, end)
        rows = self._connection().execute(
            f"SELECT latency_ms, status >= ? FROM requests WHERE {where} AND cohort = ?",
            (error_status_min, *params, cohort),
        )
        latencies: list[float] = []
        bad = 0
        for latency, failed in rows:
            latencies.append(float(latency))
            bad += int(failed)
        return CohortRequests(tuple(latencies), bad)

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _add_cohort_column(conn: sqlite3.Connection) -> None:
    """Files written before records carried a cohort get the column (empty: no rollout)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(requests)")}
    if "cohort" not in columns:
        try:
            conn.execute("ALTER TABLE requests ADD COLUMN cohort TEXT NOT NULL DEFAULT ''")
        except sqlite3.OperationalError as exc:  # another process added it first
            if "duplicate column" not in str(exc):
                raise


def _attributes_json(attributes: Mapping[str, AttributeValue]) -> str:
    # Sorted keys: one attribute set is one text, so GROUP BY sums a stream across processes.
    return json.dumps(dict(attributes), sort_keys=True, separators=(",", ":"))


def _where(functions: Sequence[str], start: float, end: float) -> tuple[str, tuple[object, ...]]:
    if ANY_FUNCTION in functions:
        return "at >= ? AND at < ?", (start, end)
    marks = ", ".join("?" for _ in functions)
    return f"function IN ({marks}) AND at >= ? AND at < ?", (*functions, start, end)


class SqliteRequestSink:
    """A ``shared.obs`` RequestSink writing to a :class:`LocalStore`; never raises."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def __call__(self, record: RequestRecordLike) -> None:
        try:
            self.store.append(record)
        except sqlite3.Error as exc:  # a lost local metric must not fail the request
            logger.warning("could not store request record in %s: %s", self.store.path, exc)


#: One sink per database path per process.
_sinks: Memo[str, SqliteRequestSink] = Memo(lambda path: SqliteRequestSink(LocalStore(path)))


def sink_from_env(environ: Mapping[str, str] | None = None) -> SqliteRequestSink | None:
    """The sink for ``LOCAL_METRICS_DB`` (one per path per process), or None when unset."""
    path = Env(environ).text("LOCAL_METRICS_DB")
    if not path:
        return None
    return _sinks(path)


def batch_writer_from_env() -> Callable[[Sequence[RequestRecordLike]], None] | None:
    """``LOCAL_METRICS_DB``'s store as the batch writer of ``shared.obs``'s request sink (the
    local stack sets ``REQUEST_SINK=shared.slo.local_store:batch_writer_from_env``): one
    transaction per batch, written off the request thread; None when the variable is unset."""
    sink = sink_from_env()
    return None if sink is None else sink.store.append_many
