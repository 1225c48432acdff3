"""A request sink that writes off the request thread: a bounded queue and one writer thread.

A store that does I/O per record (the local SQLite file: a transaction per request) puts its
latency, and its lock waits, inside every request it measures. :class:`BatchingSink` only queues
the record on the request thread (never blocking: when the queue is full the record is dropped and
counted) and one daemon thread hands whatever has accumulated to the store's batch writer, so a
busy instance writes a few large transactions instead of one per request. What is queued is
flushed at interpreter exit and by :meth:`BatchingSink.close`.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from shared.obs.errors import ObsError
from shared.obs.requests import RequestRecord

DEFAULT_CAPACITY: Final = 10_000
DEFAULT_MAX_BATCH: Final = 500
# Failures of the store are logged at most this often (seconds); every one is counted.
_FAILURE_LOG_INTERVAL_S: Final = 30.0

logger = logging.getLogger("shared.obs.batching")


class BatchWriter(Protocol):
    """Stores a batch of request records (e.g. one SQLite transaction); may raise."""

    def __call__(self, records: Sequence[RequestRecord], /) -> None: ...


@dataclass(frozen=True, slots=True)
class SinkStats:
    """Records handed to the sink so far: written, dropped (queue full), failed (store raised)."""

    accepted: int
    written: int
    dropped: int
    failed: int
    batches: int

    @property
    def pending(self) -> int:
        """Accepted records not yet written or failed."""
        return self.accepted - self.written - self.failed


_STOP = object()


class BatchingSink:
    """A :class:`shared.obs.requests.RequestSink` that queues records for ``write`` in batches.

    ``capacity`` bounds the queue (records beyond it are dropped and counted); ``max_batch``
    bounds one call of ``write``. The writer thread starts with the first record.
    """

    def __init__(
        self,
        write: BatchWriter,
        *,
        capacity: int = DEFAULT_CAPACITY,
        max_batch: int = DEFAULT_MAX_BATCH,
        name: str = "request-sink",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or max_batch < 1:
            raise ObsError(f"capacity and max_batch must be >= 1, got {capacity}, {max_batch}")
        self._write = write
        self._max_batch = max_batch
        self._name = name
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._lock = threading.Lock()
        self._done = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._closed = False
        self._accepted = self._written = self._dropped = self._failed = self._batches = 0
        self._last_failure_log = -_FAILURE_LOG_INTERVAL_S

    def __call__(self, record: RequestRecord, /) -> None:
        """Queue ``record``; never blocks, never raises."""
        if self._thread is None:
            self._start()
        with self._lock:
            if self._closed:
                self._dropped += 1
                return
            self._accepted += 1
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            with self._lock:
                self._accepted -= 1
                self._dropped += 1
                first = self._dropped == 1
            if first:
                logger.warning("%s: queue full, dropping request records", self._name)

    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(
                self._accepted, self._written, self._dropped, self._failed, self._batches
            )

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every record accepted so far is written (or failed); False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._done:
            target = self._accepted
            while self._written + self._failed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return False
                self._done.wait(remaining)
        return True

    def close(self, timeout_s: float = 5.0) -> bool:
        """Write what is queued, stop the thread and refuse (count as dropped) later records.

        True when everything was written in time. Safe to call twice.
        """
        with self._lock:
            if self._closed:
                return self._written + self._failed >= self._accepted
            self._closed = True
            thread = self._thread
        atexit.unregister(self.close)
        if thread is None:
            return True
        deadline = time.monotonic() + timeout_s
        try:  # the writer drains everything queued before the stop mark
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            return False
        thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            return not thread.is_alive() and self._written + self._failed >= self._accepted

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()
        # A daemon thread is stopped abruptly at exit: write what is queued first.
        atexit.register(self.close)

    def _run(self) -> None:
        while True:
            item = self._queue.get()  # block for the first record of a batch
            batch: list[RequestRecord] = []
            stop = item is _STOP
            if not stop:
                batch.append(item)  # type: ignore[arg-type]
            # Then take whatever accumulated meanwhile: under load the batches grow by themselves.
            while not stop and len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                else:
                    batch.append(item)  # type: ignore[arg-type]
            if batch:
                self._write_batch(batch)
            if stop:
                return

    def _write_batch(self, batch: list[RequestRecord]) -> None:
        try:
            self._write(batch)
        except Exception:  # a broken store must never stop the writer or reach a request
            now = self._clock()
            if now - self._last_failure_log >= _FAILURE_LOG_INTERVAL_S:  # only this thread
                self._last_failure_log = now
                logger.warning(
                    "%s: could not write %d request records", self._name, len(batch), exc_info=True
                )
            with self._done:
                self._failed += len(batch)
                self._done.notify_all()
            return
        with self._done:
            self._written += len(batch)
            self._batches += 1
            self._done.notify_all()
