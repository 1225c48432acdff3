"""Spans that end before the exporters are attached (a cold instance's first requests) are kept."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.obs.early_spans import EarlySpans

ROOT = Path(__file__).resolve().parents[2]


def test_held_spans_are_exported_once_attached_then_spans_pass_straight_through() -> None:
    early = EarlySpans()
    provider = TracerProvider()
    provider.add_span_processor(early)
    tracer = provider.get_tracer("t")
    for name in ("first request", "second request"):
        with tracer.start_as_current_span(name):
            pass
    exported = InMemorySpanExporter()
    early.attach(SimpleSpanProcessor(exported))
    with tracer.start_as_current_span("third request"):
        pass
    assert [s.name for s in exported.get_finished_spans()] == [
        "first request", "second request", "third request"
    ]  # fmt: skip


def test_holding_is_bounded_and_nothing_is_kept_when_there_is_no_exporter() -> None:
    early = EarlySpans(limit=2)
    provider = TracerProvider()
    provider.add_span_processor(early)
    tracer = provider.get_tracer("t")
    for _ in range(5):
        tracer.start_span("s").end()
    assert early.dropped == 3
    early.attach(None)
    tracer.start_span("after").end()
    assert early.dropped == 3  # dropped as unexportable, not counted against the limit
    assert early.force_flush()


def test_a_cold_instances_first_span_reaches_the_span_file(tmp_path: Path) -> None:
    """The span of a request served before the exporter thread finished is in the file."""
    spans = tmp_path / "telemetry.jsonl"
    script = textwrap.dedent(
        """
        from shared.obs import telemetry
        telemetry.start("graph-ask")  # returns before the exporters are attached
        attached_before = telemetry._state.ready.is_set()
        telemetry.tracer("t").start_span("cold request").end()
        telemetry._state.ready.wait(30)
        telemetry.shutdown()
        print(attached_before)
        """
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "TELEMETRY_FILE": str(spans)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False", "the exporters were attached before the span ended"
    names = [json.loads(line).get("name") for line in spans.read_text().splitlines()]
    assert "cold request" in names
