"""``@observed`` end to end through functions-framework's test client, and ``json_error``."""

from __future__ import annotations

import io
import json
import logging
import pathlib
import re
import sqlite3
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from shared.obs.http import json_error
from shared.obs.instance import request_settings
from shared.obs.logging import setup_logging, teardown_logging
from shared.obs.requests import RequestRecord, request_sinks, use_request_sinks
from shared.obs.sink_factory import configured_sink
from shared.obs.trace import TraceContext, use_trace
from shared.settings import SettingsError, reset_settings

SOURCE = str(pathlib.Path(__file__).parent / "fixtures" / "obs_app.py")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Structured logs into a buffer, project ``demo``; global state restored afterwards."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.delenv("REQUEST_SINK", raising=False)
    # These tests look at the log line of every request: no sampling.
    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "1")
    root = logging.getLogger()
    level = root.level
    teardown_logging()
    buffer = io.StringIO()
    setup_logging(stream=buffer)
    yield buffer
    teardown_logging()
    root.setLevel(level)


@pytest.fixture
def records() -> Iterator[list[RequestRecord]]:
    """The request records published during the test (only sink installed)."""
    seen: list[RequestRecord] = []
    with use_request_sinks(seen.append):
        yield seen


def client(target: str) -> FlaskClient:
    return functions_framework.create_app(target, SOURCE).test_client()


def entries(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def request_entries(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [e for e in entries(buffer) if e["logger"] == "shared.obs.request"]


def test_request_is_traced_logged_once_and_recorded(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    response = client("ok").get(
        "/orders?email=kim@example.com&q=1",
        headers={
            "traceparent": TRACEPARENT,
            "User-Agent": "probe/1.0",
            "X-Forwarded-For": "203.0.113.7, 10.0.0.1",
        },
    )
    assert response.status_code == 200
    assert response.headers["X-Trace-Id"] == TRACE
    body = response.get_json()
    # The request runs in its own server span, a child of the caller's span.
    assert body["trace_id"] == TRACE
    server_span = body["span_id"]
    assert server_span != SPAN
    outgoing = TraceContext.from_headers(body["outgoing"])
    assert outgoing.trace_id == TRACE
    assert outgoing.span_id not in (SPAN, server_span)
    assert outgoing.sampled

    (entry,) = request_entries(stream)
    assert entry["severity"] == "INFO"
    http = entry["httpRequest"]
    assert http["requestMethod"] == "GET"
    assert http["requestUrl"] == "http://localhost/orders?email=[EMAIL]&q=1"
    assert http["status"] == 200
    assert re.fullmatch(r"\d+\.\d{6}s", http["latency"])
    assert http["userAgent"] == "probe/1.0"
    assert http["remoteIp"] == "203.0.113.7"
    assert entry["logging.googleapis.com/trace"] == f"projects/demo/traces/{TRACE}"
    assert entry["logging.googleapis.com/spanId"] == server_span
    assert entry["logging.googleapis.com/labels"] == {"function": "obs_ok"}
    assert entry["injected"] is False

    (app_entry,) = [e for e in entries(stream) if e["logger"] == "tests.obs.app"]
    assert app_entry["message"] == "serving user [EMAIL]"
    assert app_entry["logging.googleapis.com/trace"] == f"projects/demo/traces/{TRACE}"
    assert "kim@example.com" not in stream.getvalue()

    (record,) = records
    assert record.function == "obs_ok"
    assert (record.method, record.path, record.status) == ("GET", "/orders", 200)
    assert record.trace_id == TRACE
    assert record.injected is False
    assert 0 <= record.latency_ms < 10_000
    assert record.at > 1.7e9


def test_cloud_trace_context_is_propagated(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    response = client("ok").get("/", headers={"X-Cloud-Trace-Context": f"{TRACE}/1;o=1"})
    assert response.headers["X-Trace-Id"] == TRACE
    assert response.get_json()["span_id"] != "0000000000000001"  # the server span, its child


def test_the_server_span_is_a_child_of_the_callers_with_filterable_attributes(
    stream: io.StringIO, records: list[RequestRecord], spans: Any
) -> None:
    client("ok").get("/orders?email=kim@example.com", headers={"traceparent": TRACEPARENT})
    (server,) = [s for s in spans.finished_spans(int(TRACE, 16)) if s.name == "GET obs_ok"]
    assert server.kind.name == "SERVER"
    assert server.parent is not None
    assert format(server.parent.span_id, "016x") == SPAN
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.route"] == "obs_ok"
    assert server.attributes["url.path"] == "/orders"
    assert server.status.status_code.name == "UNSET"


def test_a_5xx_marks_the_server_span_as_an_error(
    stream: io.StringIO, records: list[RequestRecord], spans: Any
) -> None:
    client("injected").get("/", headers={"traceparent": TRACEPARENT})
    (server,) = spans.finished_spans(int(TRACE, 16))
    assert server.status.status_code.name == "ERROR"
    assert server.attributes["chaos.injected"] is True


def test_request_durations_are_a_histogram_by_function_and_status(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    from tests import otel

    def count(status: int) -> int:
        return sum(
            p.count
            for a, p in otel.metric_points("http.server.request.duration")
            if a["function"] == "obs_injected" and a["http.response.status_code"] == status
        )

    before = count(503)
    app = client("injected")
    app.get("/")
    app.get("/")
    assert count(503) == before + 2


def test_requests_without_trace_headers_get_fresh_traces(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    app = client("ok")
    first, second = app.get("/").headers["X-Trace-Id"], app.get("/").headers["X-Trace-Id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second
    assert [r.trace_id for r in records] == [first, second]


def test_unexpected_exception_is_a_json_500_without_stack_trace(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    response = client("boom").post("/", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 500
    assert response.get_json() == {
        "error": "internal",
        "message": "internal error",
        "trace_id": TRACE,
    }
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    assert "RuntimeError" not in text
    assert "hunter2" not in text

    errors = [e for e in entries(stream) if e["logger"] == "shared.obs.http"]
    (error,) = errors
    assert error["severity"] == "ERROR"
    assert (
        "RuntimeError: database password=[SECRET] for [EMAIL] unreachable" in error["stack_trace"]
    )
    assert error["logging.googleapis.com/trace"] == f"projects/demo/traces/{TRACE}"
    assert "hunter2" not in stream.getvalue()
    (entry,) = request_entries(stream)
    assert (entry["severity"], entry["httpRequest"]["status"]) == ("ERROR", 500)
    assert [(r.status, r.injected) for r in records] == [(500, False)]


def test_injected_failure_is_flagged_and_logged_at_info(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    response = client("injected").get("/")
    assert response.status_code == 503
    assert response.headers["X-Chaos-Injected"] == "true"
    (entry,) = request_entries(stream)
    assert entry["severity"] == "INFO"
    assert entry["injected"] is True
    assert [(r.status, r.injected, r.function) for r in records] == [(503, True, "obs_injected")]


def test_sampled_out_successes_still_reach_the_sinks(
    stream: io.StringIO, records: list[RequestRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "0")
    ok = client("ok")
    for _ in range(20):
        assert ok.get("/").status_code == 200
    assert request_entries(stream) == []
    assert len(records) == 20
    monkeypatch.setenv("REQUEST_LOG_SLOW_MS", "0")  # every request is now slow: all logged
    ok.get("/")
    assert len(request_entries(stream)) == 0  # settings are read once per instance...
    reset_settings()  # ...until the instance restarts
    ok.get("/")
    assert len(request_entries(stream)) == 1
    # A failure is logged whatever the sample rate.
    assert client("injected").get("/").status_code == 503
    assert [e["httpRequest"]["status"] for e in request_entries(stream)] == [200, 503]
    assert len(records) == 23


def test_real_5xx_is_logged_at_error(stream: io.StringIO, records: list[RequestRecord]) -> None:
    response = client("unavailable").get("/", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 503
    assert response.get_json() == {
        "error": "unavailable",
        "message": "dependency down",
        "dependency": "redis",
        "trace_id": TRACE,
    }
    (entry,) = request_entries(stream)
    assert entry["severity"] == "ERROR"
    assert records[0].injected is False


def test_http_exception_becomes_json_with_its_code(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    app = client("get_only")
    assert app.get("/").get_data(as_text=True) == "fine"
    response = app.post("/", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.content_type == "application/json"
    body = response.get_json()
    assert body["code"] == 405
    assert body["error"] == "method_not_allowed"
    assert body["allowed"] == ["GET"]
    assert body["trace_id"] == TRACE
    assert "not allowed" in body["message"]
    severities = [e["severity"] for e in request_entries(stream)]
    assert severities == ["INFO", "WARNING"]


def test_413_becomes_json(stream: io.StringIO, records: list[RequestRecord]) -> None:
    response = client("too_large").post("/", data=b"x" * 10)
    assert response.status_code == 413
    body = response.get_json()
    assert (body["code"], body["error"]) == (413, "request_entity_too_large")
    assert "<" not in body["message"]


def test_json_error_body_from_a_handler(stream: io.StringIO, records: list[RequestRecord]) -> None:
    response = client("bad_param").get("/?p=abc", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_parameter",
        "message": "p must be a number between 0 and 1",
        "parameter": "p",
        "allowed": "0.0..1.0",
        "got": "abc",
        "trace_id": TRACE,
    }
    (entry,) = request_entries(stream)
    assert entry["severity"] == "WARNING"


def test_json_error_outside_a_request_has_no_trace_id() -> None:
    assert json_error(404, "not_found", "no such experiment", name="x") == (
        {"error": "not_found", "message": "no such experiment", "name": "x"},
        404,
    )
    with use_trace(TraceContext(TRACE, SPAN)):
        body, status = json_error(409, "conflict", "busy", trace_id="explicit")
    assert (body["trace_id"], status) == ("explicit", 409)


def test_a_raising_sink_does_not_break_the_response(stream: io.StringIO) -> None:
    good: list[RequestRecord] = []

    def broken(record: RequestRecord) -> None:
        raise OSError("disk full")

    with use_request_sinks(broken, good.append):
        response = client("ok").get("/")
    assert response.status_code == 200
    assert len(good) == 1
    failures = [e for e in entries(stream) if "request sink" in e["message"]]
    assert len(failures) == 1
    assert "OSError: disk full" in failures[0]["stack_trace"]


class FakeStore:
    """A batch writer that records each batch and the thread that wrote it."""

    def __init__(self) -> None:
        self.batches: list[list[RequestRecord]] = []
        self.threads: set[str] = set()

    def __call__(self, records: Sequence[RequestRecord]) -> None:
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(records))


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> FakeStore:
    """``REQUEST_SINK`` naming a factory of a :class:`FakeStore` in a module of its own."""
    store = FakeStore()
    module = types.ModuleType("tests_obs_fake_store")
    module.make = lambda: store  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tests_obs_fake_store", module)
    monkeypatch.setenv("REQUEST_SINK", "tests_obs_fake_store:make")
    return store


def test_the_store_named_by_request_sink_gets_every_record_off_the_request_thread(
    stream: io.StringIO, fake_store: FakeStore
) -> None:
    app = client("ok")
    for _ in range(5):
        assert app.get("/").status_code == 200
    sink = configured_sink()
    assert sink is not None
    assert request_sinks() == (sink,)
    assert sink.flush(5.0)
    written = [r for batch in fake_store.batches for r in batch]
    assert [r.function for r in written] == ["obs_ok"] * 5
    assert fake_store.threads == {"request-sink tests_obs_fake_store:make"}
    assert sink.stats().dropped == 0


def test_the_local_sqlite_store_is_fed_through_its_batch_writer(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    db = tmp_path / "metrics.db"
    monkeypatch.setenv("LOCAL_METRICS_DB", str(db))
    monkeypatch.setenv("REQUEST_SINK", "shared.slo.local_store:batch_writer_from_env")
    app = client("ok")
    for _ in range(30):
        assert app.get("/u/010-1234-5678").status_code == 200
    sink = configured_sink()
    assert sink is not None
    assert sink.flush(10.0)
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT function, path, status FROM requests").fetchall()
    assert rows == [("obs_ok", "/u/[PHONE]", 200)] * 30


def test_a_request_sink_that_does_not_import_is_a_warning_not_an_outage(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tests_obs_missing_store", None)
    monkeypatch.setenv("REQUEST_SINK", "tests_obs_missing_store:make")
    app = client("ok")
    assert app.get("/").status_code == 200
    assert app.get("/").status_code == 200
    assert request_sinks() == ()
    (warning,) = [e for e in entries(stream) if e["severity"] == "WARNING"]
    assert "REQUEST_SINK=tests_obs_missing_store:make" in warning["message"]


def test_no_request_sink_without_the_variable(stream: io.StringIO) -> None:
    assert client("ok").get("/").status_code == 200
    assert request_sinks() == ()
    assert not [e for e in entries(stream) if e["severity"] == "WARNING"]


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        ("REQUEST_SINK", "shared.slo.local_store", "package.module:callable"),
        ("REQUEST_SINK", "a:b:c", "package.module:callable"),
        ("REQUEST_LOG_SAMPLE_RATE", "often", "a number from 0 to 1"),
        ("REQUEST_LOG_SLOW_MS", "-5", "a number from 0 to 3.6e+06"),
    ],
)
def test_a_bad_setting_fails_the_first_request_naming_the_variable(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, name: str, value: str, allowed: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        request_settings()
    (problem,) = caught.value.problems
    assert (problem.name, problem.value) == (name, value)
    assert allowed in problem.allowed
    assert client("ok").get("/").status_code == 500
    monkeypatch.delenv(name)
    reset_settings()
    assert client("ok").get("/").status_code == 200


def test_settings_are_read_once_per_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "0.5")
    assert request_settings().sampling.sample_rate == 0.5
    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "1")
    assert request_settings().sampling.sample_rate == 0.5
    reset_settings()
    assert request_settings().sampling.sample_rate == 1.0
    monkeypatch.delenv("REQUEST_LOG_SAMPLE_RATE")
    reset_settings()
    assert request_settings().sampling.sample_rate == 0.01
    assert request_settings().sink is None


def test_observed_installs_structured_logging_once(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    app = client("ok")
    for _ in range(3):
        app.get("/")
    root = logging.getLogger()
    assert sum(type(h).__name__ == "_StructuredHandler" for h in root.handlers) == 1
    assert len(request_entries(stream)) == 3


def test_the_trace_header_replaces_one_the_handler_set(stream: io.StringIO) -> None:
    import flask

    app = flask.Flask("own_header")
    from shared.obs.http import observed

    handler = observed("obs_own_header")(
        lambda request: ({"a": 1}, 201, {"X-Trace-Id": "theirs", "Cache-Control": "no-store"})
    )
    with app.test_request_context("/", headers={"traceparent": TRACEPARENT}):
        response = handler(flask.request)
    assert response.status_code == 201
    assert response.headers.getlist("X-Trace-Id") == [TRACE]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {"a": 1}
