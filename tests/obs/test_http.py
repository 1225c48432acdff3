"""``@observed`` end to end through functions-framework's test client, and ``json_error``."""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from shared.obs import http as obs_http
from shared.obs.http import json_error
from shared.obs.logging import setup_logging, teardown_logging
from shared.obs.requests import RequestRecord, request_sinks, use_request_sinks
from shared.obs.trace import TraceContext, use_trace

SOURCE = str(pathlib.Path(__file__).parent / "fixtures" / "obs_app.py")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE}-{SPAN}-01"


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Structured logs into a buffer, project ``demo``; global state restored afterwards."""
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo")
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    monkeypatch.delenv("LOCAL_METRICS_DB", raising=False)
    # These tests look at the log line of every request: no sampling.
    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "1")
    root = logging.getLogger()
    level = root.level
    teardown_logging()
    obs_http.reset_local_sink()
    buffer = io.StringIO()
    setup_logging(stream=buffer)
    yield buffer
    teardown_logging()
    obs_http.reset_local_sink()
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
    assert (body["trace_id"], body["span_id"]) == (TRACE, SPAN)
    outgoing = TraceContext.from_headers(body["outgoing"])
    assert outgoing.trace_id == TRACE
    assert outgoing.span_id != SPAN
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
    assert entry["logging.googleapis.com/spanId"] == SPAN
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
    assert response.get_json()["span_id"] == "0000000000000001"


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
    assert len(request_entries(stream)) == 1
    # A failure is logged whatever the sample rate.
    assert client("injected").get("/").status_code == 503
    assert [e["httpRequest"]["status"] for e in request_entries(stream)] == [200, 503]
    assert len(records) == 22


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


def test_local_metrics_sink_is_installed_from_the_environment(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    stored: list[RequestRecord] = []
    fake = types.ModuleType("shared.slo.local_store")
    fake.sink_from_env = lambda: stored.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shared.slo.local_store", fake)
    monkeypatch.setenv("LOCAL_METRICS_DB", str(tmp_path / "metrics.db"))
    with use_request_sinks():
        app = client("ok")
        app.get("/")
        app.get("/")
        assert len(request_sinks()) == 1
    assert [r.function for r in stored] == ["obs_ok", "obs_ok"]


def test_local_metrics_sink_follows_the_variable(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    made: dict[str, list[RequestRecord]] = {}

    def sink_from_env() -> Any:
        return made.setdefault(os.environ["LOCAL_METRICS_DB"], []).append

    fake = types.ModuleType("shared.slo.local_store")
    fake.sink_from_env = sink_from_env  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shared.slo.local_store", fake)
    first, second = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    with use_request_sinks():
        app = client("ok")
        monkeypatch.setenv("LOCAL_METRICS_DB", first)
        app.get("/")
        monkeypatch.setenv("LOCAL_METRICS_DB", second)
        app.get("/")
        app.get("/")
        monkeypatch.delenv("LOCAL_METRICS_DB")
        app.get("/")
        assert request_sinks() == ()
    with use_request_sinks():  # the sink was dropped by the restore above: it comes back
        monkeypatch.setenv("LOCAL_METRICS_DB", second)
        app.get("/")
        assert len(request_sinks()) == 1
    assert {path: len(seen) for path, seen in made.items()} == {first: 1, second: 3}


def test_local_metrics_import_failure_is_a_warning_not_an_outage(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    monkeypatch.setitem(sys.modules, "shared.slo.local_store", None)
    monkeypatch.setenv("LOCAL_METRICS_DB", str(tmp_path / "metrics.db"))
    with use_request_sinks():
        response = client("ok").get("/")
        assert request_sinks() == ()
    assert response.status_code == 200
    (warning,) = [e for e in entries(stream) if e["severity"] == "WARNING"]
    assert "LOCAL_METRICS_DB" in warning["message"]
    assert "shared.slo.local_store" in warning["message"]


def test_local_metrics_are_off_without_the_variable(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "shared.slo.local_store", None)
    with use_request_sinks():
        assert client("ok").get("/").status_code == 200
        assert request_sinks() == ()
    assert not [e for e in entries(stream) if e["severity"] == "WARNING"]


def test_observed_installs_structured_logging_once(
    stream: io.StringIO, records: list[RequestRecord]
) -> None:
    app = client("ok")
    for _ in range(3):
        app.get("/")
    root = logging.getLogger()
    assert sum(type(h).__name__ == "_StructuredHandler" for h in root.handlers) == 1
    assert len(request_entries(stream)) == 3


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize(
    ("headers", "injected"),
    [({}, False), ({"Cache-Control": "no-store"}, False), ({"X-Chaos-Injected": "true"}, True),
     ({"x-chaos-injected": " TRUE "}, True), ({"X-Chaos-Injected": "no"}, False),
     ({"Content-Type": "application/problem+json"}, False),
     ({"Cache-Control": "no-store", "cache-control": "no-cache"}, False),
     ({"X-Trace-Id": "theirs"}, False)],
)  # fmt: skip
def test_direct_json_response_matches_flask(
    headers: dict[str, str], injected: bool, debug: bool
) -> None:
    # The (dict, status, headers) fast path must answer exactly what flask.make_response would.
    import flask

    app = flask.Flask("direct")
    app.debug = debug
    body = {"b": [1, 2], "a": "é", "n": None}
    with app.test_request_context("/"):
        fast, flagged = obs_http._make_response((body, 418, dict(headers)), TRACE)
        slow = flask.make_response((body, 418, dict(headers)))
    assert flagged is injected
    assert fast.status == slow.status
    assert fast.get_data() == slow.get_data()
    assert fast.headers.getlist("X-Trace-Id") == [TRACE]
    slow.headers["X-Trace-Id"] = TRACE
    assert sorted(fast.headers.items()) == sorted(slow.headers.items())


def test_other_return_values_still_get_the_trace_header() -> None:
    import flask

    app = flask.Flask("other")
    with app.test_request_context("/"):
        response, flagged = obs_http._make_response(("plain", 201), TRACE)
        marked, marked_flag = obs_http._make_response(
            flask.Response("x", headers={"X-Chaos-Injected": "true"}), TRACE
        )
    assert (response.status_code, response.headers["X-Trace-Id"], flagged) == (201, TRACE, False)
    assert (marked.headers["X-Trace-Id"], marked_flag) == (TRACE, True)


@pytest.mark.parametrize("sort_keys", [True, False])
@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("compact", [None, True, False])
def test_direct_json_body_follows_the_providers_settings(
    sort_keys: bool, ensure_ascii: bool, compact: bool | None
) -> None:
    # The cached encoder must write what the provider's dumps would, whatever the app set.
    import dataclasses
    import datetime
    import decimal
    import uuid

    import flask

    @dataclasses.dataclass
    class Point:
        x: int

    app = flask.Flask("settings")
    app.json.sort_keys = sort_keys  # type: ignore[attr-defined]
    app.json.ensure_ascii = ensure_ascii  # type: ignore[attr-defined]
    app.json.compact = compact  # type: ignore[attr-defined]
    body = {
        "z": "ü 한글",
        "a": datetime.date(2026, 11, 26),
        "m": decimal.Decimal("1.50"),
        "u": uuid.UUID(int=7),
        "p": Point(3),
        "n": [None, 1.5, True],
    }
    with app.test_request_context("/"):
        fast, _ = obs_http._make_response((body, 200, {}), TRACE)
        slow = flask.make_response((body, 200, {}))
    assert fast.get_data() == slow.get_data()


def test_request_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.obs import sampling

    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "0.5")
    assert obs_http._request_settings()[0].sample_rate == 0.5
    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "1")
    assert obs_http._request_settings()[0].sample_rate == 1.0
    monkeypatch.delenv("REQUEST_LOG_SAMPLE_RATE")
    assert obs_http._request_settings()[0].sample_rate == sampling.DEFAULT_SAMPLE_RATE
    monkeypatch.setenv("LOCAL_METRICS_DB", "/tmp/x.db")
    assert obs_http._request_settings()[1] == "/tmp/x.db"
    monkeypatch.delenv("LOCAL_METRICS_DB")
    assert obs_http._request_settings()[1] is None
