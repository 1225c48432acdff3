"""The batching request sink: off the request thread, bounded, never blocking, flushed at close."""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from shared.obs.batching import BatchingSink
from shared.obs.errors import ObsError
from shared.obs.requests import RequestRecord


def record(i: int) -> RequestRecord:
    return RequestRecord("fn", "GET", f"/{i}", 200, 1.0, f"{i + 1:032x}", False, 1.8e9 + i)


class Store:
    """A batch writer that can be held (to fill the queue) and made to fail."""

    def __init__(self) -> None:
        self.batches: list[list[RequestRecord]] = []
        self.threads: set[int] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False

    def __call__(self, records: Sequence[RequestRecord]) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.threads.add(threading.get_ident())
        if self.fail:
            raise OSError("disk full")
        self.batches.append(list(records))

    @property
    def written(self) -> list[RequestRecord]:
        return [r for batch in self.batches for r in batch]


@pytest.fixture
def store() -> Iterator[Store]:
    store = Store()
    yield store
    store.gate.set()


def test_records_are_written_in_order_from_one_other_thread(store: Store) -> None:
    sink = BatchingSink(store)
    records = [record(i) for i in range(100)]
    for r in records:
        sink(r)
    assert sink.flush(5)
    assert store.written == records
    assert store.threads
    assert threading.get_ident() not in store.threads
    assert len(store.threads) == 1
    stats = sink.stats()
    assert (stats.accepted, stats.written, stats.dropped, stats.failed, stats.pending) == (
        100,
        100,
        0,
        0,
        0,
    )
    assert sink.close()


def test_records_that_accumulate_while_the_store_is_busy_go_in_one_batch(store: Store) -> None:
    sink = BatchingSink(store, max_batch=50)
    store.gate.clear()
    sink(record(0))
    assert store.entered.wait(5)  # the writer holds record 0 in the store
    for i in range(1, 121):
        sink(record(i))
    store.gate.set()
    assert sink.flush(5)
    assert [len(b) for b in store.batches] == [1, 50, 50, 20]
    assert sink.stats().batches == 4
    sink.close()


def test_a_full_queue_drops_and_counts_without_blocking(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sink = BatchingSink(store, capacity=10)
    store.gate.clear()
    sink(record(0))
    assert store.entered.wait(5)
    began = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="shared.obs.batching"):
        for i in range(1, 31):
            sink(record(i))
    assert time.perf_counter() - began < 0.5  # never waits for the held store
    stats = sink.stats()
    assert (stats.accepted, stats.dropped) == (11, 20)
    assert len([r for r in caplog.records if "queue full" in r.getMessage()]) == 1
    store.gate.set()
    assert sink.flush(5)
    assert store.written == [record(i) for i in range(11)]
    sink.close()


def test_a_failing_store_is_counted_logged_and_the_writer_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sink = BatchingSink(store)
    store.fail = True
    with caplog.at_level(logging.WARNING, logger="shared.obs.batching"):
        for i in range(3):
            sink(record(i))
        assert sink.flush(5)
    assert sink.stats().failed == 3
    (warning,) = [r for r in caplog.records if "could not write" in r.getMessage()]
    assert warning.exc_info is not None
    assert isinstance(warning.exc_info[1], OSError)
    store.fail = False
    sink(record(9))
    assert sink.flush(5)
    assert store.written == [record(9)]
    sink.close()


def test_close_writes_what_is_queued_then_refuses_records(store: Store) -> None:
    sink = BatchingSink(store)
    store.gate.clear()
    for i in range(5):
        sink(record(i))
    assert store.entered.wait(5)
    threading.Timer(0.05, store.gate.set).start()
    assert sink.close(5)
    assert store.written == [record(i) for i in range(5)]
    sink(record(99))
    assert sink.stats().dropped == 1
    assert store.written == [record(i) for i in range(5)]
    assert sink.close()  # a second close is harmless


def test_close_reports_a_store_that_does_not_finish_in_time(store: Store) -> None:
    sink = BatchingSink(store)
    store.gate.clear()
    sink(record(0))
    assert store.entered.wait(5)
    assert not sink.close(0.1)
    store.gate.set()


def test_queued_records_are_written_at_exit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    registered: list[object] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(atexit, "unregister", lambda fn: None)
    sink = BatchingSink(store)
    sink(record(0))
    assert registered == [sink.close]


def test_flush_without_records_is_immediate(store: Store) -> None:
    assert BatchingSink(store).flush(0.01)


@pytest.mark.parametrize(("capacity", "max_batch"), [(0, 1), (1, 0)])
def test_sizes_must_be_positive(store: Store, capacity: int, max_batch: int) -> None:
    with pytest.raises(ObsError, match="must be >= 1"):
        BatchingSink(store, capacity=capacity, max_batch=max_batch)
