"""The request-sink registry and request records."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator

import pytest

from shared.obs.requests import (
    RequestRecord,
    add_request_sink,
    publish_request,
    remove_request_sink,
    request_sinks,
    use_request_sinks,
)

RECORD = RequestRecord(
    function="chaos_delay",
    method="GET",
    path="/",
    status=200,
    latency_ms=12.5,
    trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
    injected=False,
    at=1_795_000_000.0,
)


@pytest.fixture(autouse=True)
def _isolated_sinks() -> Iterator[None]:
    with use_request_sinks():
        yield


def test_add_remove_and_list_sinks() -> None:
    first: list[RequestRecord] = []
    second: list[RequestRecord] = []
    add_request_sink(first.append)
    add_request_sink(second.append)
    add_request_sink(first.append)  # already installed: not added twice
    assert request_sinks() == (first.append, second.append)
    publish_request(RECORD)
    assert first == [RECORD]
    assert second == [RECORD]
    remove_request_sink(first.append)
    remove_request_sink(first.append)  # not installed: ignored
    assert request_sinks() == (second.append,)


def test_use_request_sinks_restores_the_previous_sinks() -> None:
    outer: list[RequestRecord] = []
    add_request_sink(outer.append)
    inner: list[RequestRecord] = []
    with use_request_sinks(inner.append):
        publish_request(RECORD)
    publish_request(RECORD)
    assert (len(inner), len(outer)) == (1, 1)


def test_a_failing_sink_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[RequestRecord] = []

    def broken(record: RequestRecord) -> None:
        raise RuntimeError("store down")

    add_request_sink(broken)
    add_request_sink(seen.append)
    with caplog.at_level(logging.ERROR, logger="shared.obs.requests"):
        publish_request(RECORD)
    assert seen == [RECORD]
    (failure,) = caplog.records
    assert failure.exc_info is not None
    assert "store down" in str(failure.exc_info[1])


def test_record_is_frozen_and_knows_whether_it_was_good() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        RECORD.status = 500  # type: ignore[misc]
    assert RECORD.ok
    assert not dataclasses.replace(RECORD, status=503).ok
    assert dataclasses.replace(RECORD, status=429).ok
