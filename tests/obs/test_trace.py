"""Trace context parsing, propagation and the current-trace context variable."""

from __future__ import annotations

import re
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import Headers

from shared.obs import trace as trace_module
from shared.obs.trace import ObsError, TraceContext, current_trace, project_id, use_trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def test_traceparent_is_parsed() -> None:
    ctx = TraceContext.from_headers({"traceparent": f"00-{TRACE}-{SPAN}-01"})
    assert ctx == TraceContext(TRACE, SPAN, True)


def test_traceparent_unsampled_and_uppercase() -> None:
    ctx = TraceContext.from_headers({"traceparent": f"00-{TRACE.upper()}-{SPAN.upper()}-00"})
    assert ctx == TraceContext(TRACE, SPAN, False)


def test_future_traceparent_version_may_carry_more_fields() -> None:
    ctx = TraceContext.from_headers({"traceparent": f"01-{TRACE}-{SPAN}-03-future"})
    assert ctx == TraceContext(TRACE, SPAN, True)


def test_cloud_trace_context_decimal_span_is_converted_to_hex() -> None:
    ctx = TraceContext.from_headers(
        {"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/12398095946311101313;o=1"}
    )
    assert ctx == TraceContext("105445aa7843bc8bf206b12000100000", "ac0ee29343156b81", True)
    assert int("ac0ee29343156b81", 16) == 12398095946311101313


def test_cloud_trace_context_small_span_is_zero_padded() -> None:
    ctx = TraceContext.from_headers({"X-Cloud-Trace-Context": f"{TRACE}/1;o=0"})
    assert ctx == TraceContext(TRACE, "0000000000000001", False)


@pytest.mark.parametrize("value", [TRACE, f"{TRACE}/0;o=1", f"{TRACE}/{2**64};o=1", f"{TRACE};o=1"])
def test_cloud_trace_context_without_usable_span_keeps_the_trace(value: str) -> None:
    ctx = TraceContext.from_headers({"X-Cloud-Trace-Context": value})
    assert ctx.trace_id == TRACE
    assert HEX16.fullmatch(ctx.span_id)
    assert ctx.span_id != "0" * 16
    assert ctx.sampled is value.endswith("o=1")


def test_traceparent_is_preferred_over_cloud_trace_context() -> None:
    ctx = TraceContext.from_headers(
        {
            "X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/1;o=1",
            "traceparent": f"00-{TRACE}-{SPAN}-00",
        }
    )
    assert ctx == TraceContext(TRACE, SPAN, False)


def test_invalid_traceparent_falls_back_to_cloud_trace_context() -> None:
    ctx = TraceContext.from_headers(
        {"traceparent": "garbage", "X-Cloud-Trace-Context": f"{TRACE}/1;o=1"}
    )
    assert ctx == TraceContext(TRACE, "0000000000000001", True)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": ""},
        {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
        {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01-extra"},
        {"traceparent": f"00-{TRACE[:-1]}-{SPAN}-01"},
        {"traceparent": f"00-{TRACE}-{SPAN}-zz"},
        {"traceparent": f"00-{TRACE}-{SPAN}-01" + "x" * 600},
        {"X-Cloud-Trace-Context": "not-a-trace/1;o=1"},
        {"X-Cloud-Trace-Context": f"{'0' * 32}/1;o=1"},
        {"X-Cloud-Trace-Context": f"{TRACE}/abc;o=1"},
    ],
)
def test_invalid_headers_give_a_fresh_context(headers: dict[str, str]) -> None:
    ctx = TraceContext.from_headers(headers)
    assert HEX32.fullmatch(ctx.trace_id)
    assert HEX16.fullmatch(ctx.span_id)
    assert ctx.trace_id != TRACE
    assert ctx.sampled is False


def test_fresh_contexts_differ() -> None:
    ids = {TraceContext.from_headers({}).trace_id for _ in range(100)}
    assert len(ids) == 100


def test_header_names_are_case_insensitive_for_plain_dicts_and_werkzeug() -> None:
    expected = TraceContext(TRACE, SPAN, True)
    assert TraceContext.from_headers({"Traceparent": f"00-{TRACE}-{SPAN}-01"}) == expected
    headers = Headers([("TRACEPARENT", f"00-{TRACE}-{SPAN}-01")])
    assert TraceContext.from_headers(headers) == expected
    cloud = {"x-cloud-trace-context": f"{TRACE}/1;o=1"}
    assert TraceContext.from_headers(cloud).trace_id == TRACE


@given(st.dictionaries(st.sampled_from(["traceparent", "X-Cloud-Trace-Context"]), st.text()))
def test_from_headers_never_raises(headers: dict[str, str]) -> None:
    ctx = TraceContext.from_headers(headers)
    assert HEX32.fullmatch(ctx.trace_id)
    assert HEX16.fullmatch(ctx.span_id)


def test_child_keeps_trace_and_sampling_with_a_new_span() -> None:
    parent = TraceContext(TRACE, SPAN, True)
    child = parent.child()
    assert (child.trace_id, child.sampled) == (TRACE, True)
    assert child.span_id != SPAN
    assert HEX16.fullmatch(child.span_id)


def test_to_headers() -> None:
    assert TraceContext(TRACE, "ac0ee29343156b81", True).to_headers() == {
        "traceparent": f"00-{TRACE}-ac0ee29343156b81-01",
        "X-Cloud-Trace-Context": f"{TRACE}/12398095946311101313;o=1",
    }


ids32 = st.integers(1, 2**128 - 1).map(lambda n: f"{n:032x}")
ids16 = st.integers(1, 2**64 - 1).map(lambda n: f"{n:016x}")


@given(ids32, ids16, st.booleans())
def test_each_propagation_header_round_trips(trace: str, span: str, sampled: bool) -> None:
    ctx = TraceContext(trace, span, sampled)
    headers = ctx.to_headers()
    assert TraceContext.from_headers(headers) == ctx
    assert TraceContext.from_headers({"traceparent": headers["traceparent"]}) == ctx
    cloud = {"X-Cloud-Trace-Context": headers["X-Cloud-Trace-Context"]}
    assert TraceContext.from_headers(cloud) == ctx


def test_log_fields() -> None:
    ctx = TraceContext(TRACE, SPAN, True)
    assert ctx.log_fields("demo") == {
        "logging.googleapis.com/trace": f"projects/demo/traces/{TRACE}",
        "logging.googleapis.com/spanId": SPAN,
        "logging.googleapis.com/trace_sampled": True,
    }
    assert ctx.log_fields(None)["logging.googleapis.com/trace"] == TRACE


@pytest.mark.parametrize(
    ("trace", "span"),
    [(TRACE.upper(), SPAN), ("0" * 32, SPAN), (TRACE, "0" * 16), (TRACE[:31], SPAN), (TRACE, "x")],
)
def test_invalid_ids_are_rejected(trace: str, span: str) -> None:
    with pytest.raises(ObsError, match="hex"):
        TraceContext(trace, span)


def test_use_trace_sets_and_restores_the_current_trace() -> None:
    outer, inner = TraceContext(TRACE, SPAN), TraceContext(TRACE, SPAN).child()
    assert current_trace() is None
    with use_trace(outer):
        assert current_trace() is outer
        with use_trace(inner):
            assert current_trace() is inner
        assert current_trace() is outer
    assert current_trace() is None


def test_current_trace_is_per_thread() -> None:
    seen: list[TraceContext | None] = []
    with use_trace(TraceContext(TRACE, SPAN)):
        thread = threading.Thread(target=lambda: seen.append(current_trace()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_project_id_is_read_from_the_environment_at_call_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCP_PROJECT", raising=False)
    assert project_id() is None
    monkeypatch.setenv("GCP_PROJECT", "legacy")
    assert project_id() == "legacy"
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "modern")
    assert project_id() == "modern"


def test_a_fresh_context_never_has_an_all_zero_id(monkeypatch: pytest.MonkeyPatch) -> None:
    class Zero:
        def getrandbits(self, k: int) -> int:
            return 0

        def randbytes(self, n: int) -> bytes:
            return bytes(n)

    monkeypatch.setattr(trace_module, "_random", Zero())
    fresh = TraceContext.new()
    assert (fresh.trace_id, fresh.span_id) == ("0" * 31 + "1", "0" * 15 + "1")


def test_fresh_ids_come_from_one_draw_and_differ() -> None:
    seen = {TraceContext.new().trace_id for _ in range(1000)}
    assert len(seen) == 1000
    ctx = TraceContext.new()
    assert re.fullmatch(r"[0-9a-f]{32}", ctx.trace_id)
    assert re.fullmatch(r"[0-9a-f]{16}", ctx.span_id)
    assert not ctx.sampled


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
        {"traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00"},
        {"X-Cloud-Trace-Context": "4bf92f3577b34da6a3ce929d0e0e4736/123;o=1"},
        {"traceparent": "garbage", "X-Cloud-Trace-Context": "4bf92f3577b34da6a3ce929d0e0e4736/9"},
    ],
)
def test_header_values_parse_like_the_headers(headers: dict[str, str]) -> None:
    from_values = TraceContext.from_header_values(
        headers.get("traceparent"), headers.get("X-Cloud-Trace-Context")
    )
    assert from_values == TraceContext.from_headers(headers)


@pytest.mark.parametrize("values", [(None, None), ("garbage", None), (b"00-ab", 7)])
def test_absent_or_unusable_header_values_give_a_fresh_context(
    values: tuple[object, object],
) -> None:
    first, second = (TraceContext.from_header_values(*values) for _ in range(2))
    assert first.trace_id != second.trace_id
    assert not first.sampled
