"""The trace view: the current OpenTelemetry span's ids, propagation through the propagators."""

from __future__ import annotations

import re
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from shared.obs import telemetry
from shared.obs.trace import (
    ObsError,
    TraceContext,
    current_trace,
    extract_environ,
    use_trace,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def test_traceparent_is_read() -> None:
    ctx = TraceContext.from_headers({"traceparent": f"00-{TRACE}-{SPAN}-01"})
    assert ctx == TraceContext(TRACE, SPAN, True)


def test_unsampled_traceparent() -> None:
    ctx = TraceContext.from_headers({"traceparent": f"00-{TRACE}-{SPAN}-00"})
    assert ctx == TraceContext(TRACE, SPAN, False)


def test_cloud_trace_context_decimal_span_is_converted_to_hex() -> None:
    ctx = TraceContext.from_headers({"X-Cloud-Trace-Context": f"{TRACE}/{int(SPAN, 16)};o=1"})
    assert ctx == TraceContext(TRACE, SPAN, True)


def test_traceparent_is_preferred_over_cloud_trace_context() -> None:
    other = "0af7651916cd43dd8448eb211c80319c"
    ctx = TraceContext.from_headers(
        {"X-Cloud-Trace-Context": f"{other}/1;o=1", "traceparent": f"00-{TRACE}-{SPAN}-01"}
    )
    assert ctx.trace_id == TRACE


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "garbage"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"X-Cloud-Trace-Context": "not-a-trace"},
    ],
)
def test_missing_or_invalid_headers_give_a_fresh_context(headers: dict[str, str]) -> None:
    ctx = TraceContext.from_headers(headers)
    assert HEX32.fullmatch(ctx.trace_id)
    assert HEX16.fullmatch(ctx.span_id)
    assert ctx.trace_id != TRACE


def test_header_names_are_case_insensitive_for_plain_dicts_and_werkzeug() -> None:
    value = f"00-{TRACE}-{SPAN}-01"
    for headers in ({"TraceParent": value}, Headers([("TRACEPARENT", value)])):
        assert TraceContext.from_headers(headers).trace_id == TRACE


@given(st.dictionaries(st.sampled_from(["traceparent", "X-Cloud-Trace-Context"]), st.text()))
def test_from_headers_never_raises(headers: dict[str, str]) -> None:
    assert HEX32.fullmatch(TraceContext.from_headers(headers).trace_id)


def test_the_wsgi_environ_is_read_like_the_headers() -> None:
    from opentelemetry import trace

    environ = {"HTTP_TRACEPARENT": f"00-{TRACE}-{SPAN}-01", "PATH_INFO": "/"}
    span = trace.get_current_span(extract_environ(environ))
    assert TraceContext.of_span(span) == TraceContext(TRACE, SPAN, True)
    assert TraceContext.of_span(trace.get_current_span(extract_environ({}))) is None


def test_to_headers_round_trips_both_formats() -> None:
    ctx = TraceContext(TRACE, SPAN, True)
    headers = ctx.to_headers()
    assert headers["traceparent"] == f"00-{TRACE}-{SPAN}-01"
    assert headers["x-cloud-trace-context"] == f"{TRACE}/{int(SPAN, 16)};o=1"
    for name in ("traceparent", "x-cloud-trace-context"):
        assert TraceContext.from_headers({name: headers[name]}) == ctx


def test_log_fields() -> None:
    ctx = TraceContext(TRACE, SPAN, True)
    assert ctx.log_fields("demo") == {
        "logging.googleapis.com/trace": f"projects/demo/traces/{TRACE}",
        "logging.googleapis.com/spanId": SPAN,
        "logging.googleapis.com/trace_sampled": True,
    }
    assert ctx.log_fields(None)["logging.googleapis.com/trace"] == TRACE


@pytest.mark.parametrize(
    ("trace", "span"), [("0" * 32, SPAN), (TRACE, "0" * 16), ("xyz", SPAN), (TRACE.upper(), SPAN)]
)
def test_invalid_ids_are_rejected(trace: str, span: str) -> None:
    with pytest.raises(ObsError):
        TraceContext(trace, span)


def test_current_trace_follows_the_current_span() -> None:
    assert current_trace() is None
    with telemetry.tracer("tests").start_as_current_span("work") as span:
        current = current_trace()
        assert current == TraceContext.of_span(span)
    assert current_trace() is None


def test_use_trace_sets_and_restores_the_current_trace() -> None:
    ctx = TraceContext(TRACE, SPAN, True)
    with use_trace(ctx) as entered:
        assert entered is ctx
        assert current_trace() == ctx
        with use_trace(None):
            assert current_trace() is None
        assert current_trace() == ctx
    assert current_trace() is None


def test_current_trace_is_per_thread() -> None:
    seen: list[TraceContext | None] = []
    with use_trace(TraceContext(TRACE, SPAN)):
        worker = threading.Thread(target=lambda: seen.append(current_trace()))
        worker.start()
        worker.join()
    assert seen == [None]


def test_fresh_contexts_differ() -> None:
    assert TraceContext.fresh().trace_id != TraceContext.fresh().trace_id
