"""shared.obs.telemetry: settings, propagation in both header formats, the span file and its CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

from shared.obs import telemetry, traces
from shared.settings import SettingsError, reset_settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "K_SERVICE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "TELEMETRY_FILE",
        "TELEMETRY_EXPORTER",
        "TRACE_SAMPLE_RATE",
        "TELEMETRY_METRIC_SINK",
    ):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "exporter", "rate"),
    [
        ({}, "none", 1.0),
        ({"K_SERVICE": "graph-ask"}, "cloud", 0.1),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp", 1.0),
        ({"TELEMETRY_FILE": "/tmp/t.jsonl"}, "file", 1.0),
        ({"K_SERVICE": "x", "TELEMETRY_EXPORTER": "none", "TRACE_SAMPLE_RATE": "0.5"}, "none", 0.5),
    ],
)
def test_exporter_is_chosen_by_setting(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], exporter: str, rate: float
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    chosen = telemetry.settings()
    assert (chosen.exporter, chosen.sample_rate) == (exporter, rate)


def test_a_malformed_metric_sink_is_a_bad_setting(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TELEMETRY_METRIC_SINK", "shared.slo.local_metrics.exporter_from_env")
    with pytest.raises(SettingsError) as caught:
        telemetry.settings()
    (problem,) = caught.value.problems
    assert problem.name == "TELEMETRY_METRIC_SINK"
    assert "package.module:callable" in str(caught.value)
    clean_env.setenv("TELEMETRY_METRIC_SINK", "shared.slo.local_metrics:exporter_from_env")
    reset_settings()
    sink = telemetry.settings().metric_sink
    assert (sink.module, sink.attribute) == ("shared.slo.local_metrics", "exporter_from_env")


def test_bad_settings_name_every_variable(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("TELEMETRY_EXPORTER", "jaeger")
    clean_env.setenv("TRACE_SAMPLE_RATE", "2")
    clean_env.setenv("TELEMETRY_METRIC_INTERVAL_S", "1")
    with pytest.raises(SettingsError) as caught:
        telemetry.settings()
    names = [p.name for p in caught.value.problems]
    assert names == ["TELEMETRY_EXPORTER", "TRACE_SAMPLE_RATE", "TELEMETRY_METRIC_INTERVAL_S"]
    assert "one of auto, cloud, otlp, file, none" in str(caught.value)


def test_w3c_traceparent_is_extracted() -> None:
    ctx = telemetry.extract({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    span = trace.get_current_span(ctx)
    assert telemetry.current_span_ids(span) == (TRACE_ID, PARENT_ID, True)


def test_cloud_trace_header_is_extracted() -> None:
    ctx = telemetry.extract({"X-Cloud-Trace-Context": f"{TRACE_ID}/{int(PARENT_ID, 16)};o=1"})
    assert telemetry.current_span_ids(trace.get_current_span(ctx)) == (TRACE_ID, PARENT_ID, True)


def test_traceparent_wins_over_the_cloud_header() -> None:
    other = "0af7651916cd43dd8448eb211c80319c"
    ctx = telemetry.extract(
        {
            "X-Cloud-Trace-Context": f"{other}/1;o=1",
            "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01",
        }
    )
    ids = telemetry.current_span_ids(trace.get_current_span(ctx))
    assert ids is not None
    assert ids[0] == TRACE_ID


def test_no_or_malformed_headers_give_no_parent() -> None:
    for headers in ({}, {"traceparent": "00-zz-yy-01"}, {"X-Cloud-Trace-Context": "nope"}):
        context = telemetry.extract(headers)
        assert telemetry.current_span_ids(trace.get_current_span(context)) is None


def test_inject_writes_both_formats_for_the_current_span(spans: Any) -> None:
    tracer = telemetry.tracer("tests")
    parent = telemetry.extract({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    with tracer.start_as_current_span("outgoing", context=parent) as span:
        headers: dict[str, str] = {}
        telemetry.inject(headers)
        ids = telemetry.current_span_ids(span)
    assert ids is not None
    assert headers["traceparent"] == f"00-{TRACE_ID}-{ids[1]}-01"
    assert headers["x-cloud-trace-context"] == f"{TRACE_ID}/{int(ids[1], 16)};o=1"
    (finished,) = spans.finished_spans(int(TRACE_ID, 16))
    assert finished.parent is not None
    assert format(finished.parent.span_id, "016x") == PARENT_ID


def test_unsampled_parent_keeps_the_child_unsampled(spans: Any) -> None:
    tracer = telemetry.tracer("tests")
    parent = telemetry.extract({"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-00"})
    with tracer.start_as_current_span("child", context=parent) as span:
        ids = telemetry.current_span_ids(span)
    assert ids is not None
    assert ids[:1] == (TRACE_ID,)
    assert ids[2] is False
    assert spans.finished_spans(int(TRACE_ID, 16)) == []


def _span_line(
    name: str, service: str, span_id: str, parent: str | None, start: str, end: str, **attrs: Any
) -> str:
    return json.dumps(
        {
            "name": name,
            "context": {"trace_id": f"0x{TRACE_ID}", "span_id": f"0x{span_id}"},
            "parent_id": f"0x{parent}" if parent else None,
            "start_time": f"2026-11-30T10:00:{start}Z",
            "end_time": f"2026-11-30T10:00:{end}Z",
            "status": {"status_code": "UNSET"},
            "attributes": attrs,
            "resource": {"attributes": {"service.name": service}},
        }
    )


def test_the_traces_cli_prints_a_tree_across_processes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    span_file = tmp_path / "telemetry.jsonl"
    span_file.write_text(
        "\n".join(
            [
                _span_line("GET /graph", "upstream", "c" * 16, "b" * 16, "00.300000", "01.800000"),
                _span_line("POST /graph_ask", "graph_ask", "a" * 16, None, "00.0", "02.0"),
                '{"resource_metrics": []}',
                "not json",
                _span_line(
                    "GET /chaos_proxy/neo4j/graph",
                    "chaos_proxy",
                    "b" * 16,
                    "a" * 16,
                    "00.100000",
                    "01.900000",
                    **{"http.response.status_code": 200},
                ),
            ]
        )
        + "\n"
    )
    assert traces.main(["--file", str(span_file), "--slowest"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"trace {TRACE_ID} across 3 process(es): chaos_proxy, graph_ask, upstream"
    assert out[1].startswith("graph_ask      POST /graph_ask  2000.0 ms")
    assert out[2].startswith("  chaos_proxy    GET /chaos_proxy/neo4j/graph  1800.0 ms")
    assert out[2].endswith("http.response.status_code=200")
    assert out[3].startswith("    upstream       GET /graph  1500.0 ms")
    assert traces.main(["--file", str(span_file), "0" * 32]) == 1
    assert traces.main(["--file", str(tmp_path / "missing.jsonl")]) == 2


def test_the_file_exporter_writes_lines_the_cli_reads(tmp_path: Path) -> None:
    """The SDK's own console exporter, as the ``file`` setting builds it, round-trips."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from shared.obs.telemetry import TelemetrySettings, _span_exporter

    config = TelemetrySettings("file", None, 1.0, 60.0, str(tmp_path / "spans.jsonl"), None, False)
    exporter = _span_exporter(config)
    assert exporter is not None
    provider = TracerProvider(resource=Resource.create({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root"), tracer.start_as_current_span("child") as child:
        child.set_attribute("k", "v")
    provider.shutdown()
    lines = Path(config.file or "").read_text().splitlines()
    assert len(lines) == 2
    (root,) = traces.build_trees(traces.read_spans(lines)).values()
    assert [r.name for r in root] == ["root"]
    assert [(c.name, c.service, c.attributes) for c in root[0].children] == [
        ("child", "svc", {"k": "v"})
    ]
