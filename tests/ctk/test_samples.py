"""The load report: HDR percentiles, per-plan numbers, served kinds, 429s, the timeline."""

from __future__ import annotations

import pytest

from shared.chaos.ctk.errors import InvalidArgument
from shared.chaos.ctk.samples import Sample, percentiles, summarize
from shared.chaos.ctk.spec import LoadSpec, load_spec


def test_percentiles_from_the_hdr_histogram() -> None:
    result = percentiles(float(ms) for ms in range(1, 101))
    assert result is not None
    assert result["count"] == 100
    # 3 significant digits: exact within 0.1% at these magnitudes.
    assert result["p50"] == pytest.approx(50.0, rel=1e-3)
    assert result["p95"] == pytest.approx(95.0, rel=1e-3)
    assert result["p99"] == pytest.approx(99.0, rel=1e-3)
    assert result["max"] == pytest.approx(100.0, rel=1e-3)
    assert percentiles([]) is None


def _samples() -> list[Sample]:
    return [
        Sample(0.0, "premium", 200, 100.0, served="normal", model="gpt", cache="miss"),
        Sample(0.1, "premium", 200, 1500.0, served="fallback", model="local", cache="hit"),
        Sample(0.2, "free", 200, 50.0, served="cached", model="gpt", cache="hit", queue_wait_ms=40),
        Sample(0.3, "free", 429, 5.0, retry_after="3"),
        Sample(0.4, "free", 429, 5.0),
        Sample(0.5, "free", 503, 20.0),
        Sample(0.9, "free", 0, 10_000.0),
        Sample(0.95, "free", 200, 700.0, served="degraded", cache="off", degraded_reason="graph"),
    ]


def test_summary_counts_what_the_tolerances_read() -> None:
    report = summarize(_samples(), planned=8, duration_s=1.0, elapsed_s=1.0, base_rpm=60.0)
    assert report["sent"] == 8
    # The degraded UX message is a 200 ("ok") but not an answer.
    assert (report["ok"], report["answered"]) == (4, 3)
    assert report["answered_ratio"] == pytest.approx(3 / 8)
    assert report["ok_or_refused_ratio"] == pytest.approx(6 / 8)
    assert report["served_ratio"]["degraded"] == pytest.approx(1 / 4)
    assert report["degraded_reasons"] == {"graph": 1}
    assert report["latency_ms"]["count"] == 4  # what users saw, the UX message included
    assert report["errors"] == {"0": 1, "503": 1}
    assert report["refused"]["count"] == 2
    assert report["refused"]["with_retry_after_ratio"] == 0.5
    assert report["refused"]["without_retry_after"] == 1
    assert report["refused"]["retry_after_s_max"] == 3.0
    assert report["served"]["fallback"] == 1
    assert report["fallback_by_model"] == {"local": 1}
    assert report["fallback_ratio"] == pytest.approx(1 / 3)
    assert report["cache_hit_ratio"] == pytest.approx(2 / 3)  # "off" is no lookup
    assert report["served_rpm"] == pytest.approx(240.0)
    assert report["served_per_base_rpm"] == pytest.approx(4.0)
    premium = report["plans"]["premium"]
    # One of two premium answers took 1.5 s: half were served within the 1 s target.
    assert premium["within_target_ratio"] == 0.5
    free = report["plans"]["free"]
    assert free["refused"] == 2
    assert free["within_target_ratio"] == pytest.approx(1 / 6)
    assert free["queue_wait_ms"]["p95"] == pytest.approx(40.0, rel=1e-3)


def test_timeline_slices_the_run_by_scheduled_time() -> None:
    report = summarize(_samples(), planned=8, duration_s=1.0, elapsed_s=1.0, buckets=2)
    first, second = report["timeline"]
    assert (first["t_s"], first["sent"], first["ok"]) == (0.0, 5, 3)
    assert first["refused_ratio"] == pytest.approx(2 / 5)
    assert (second["t_s"], second["sent"], second["degraded"]) == (0.5, 3, 1)
    assert second["error_ratio"] == pytest.approx(2 / 3)


def test_nothing_sent_gives_no_ratios() -> None:
    report = summarize([], planned=1, duration_s=1.0, elapsed_s=1.0)
    assert report["answered_ratio"] is None
    assert report["latency_ms"] is None
    assert report["cache_hit_ratio"] is None


def test_premium_share_is_spread_evenly() -> None:
    spec = LoadSpec(url="http://127.0.0.1:1/", rate_rps=10.0, duration_s=1.0, premium_share=0.3)
    plans = [spec.plan_of(i) for i in range(10)]
    assert plans.count("premium") == 3
    assert "premium" not in (plans[0], plans[1])  # not bunched at the start


def test_load_spec_names_every_bad_argument() -> None:
    with pytest.raises(InvalidArgument) as info:
        load_spec(url="http://example.com/x", rate_rps=0, duration_s=5.0, premium_share=2, nope=1)
    text = str(info.value)
    assert (
        "url must be an http:// URL on 127.0.0.1 or localhost, got 'http://example.com/x'" in text
    )
    assert "rate_rps must be a number in [0.01, 2000], got 0" in text
    assert "premium_share must be a number in [0, 1], got 2" in text
    assert "unknown argument(s) nope" in text


def test_load_spec_is_bounded_in_count() -> None:
    spec = load_spec(url="http://127.0.0.1:9/", rate_rps=100.0, duration_s=60.0, max_requests=50)
    assert spec.planned == 50


def test_the_slowest_traced_request_points_at_its_trace() -> None:
    samples = [
        Sample(0.0, "free", 200, 80.0, served="normal", trace_id="a" * 32),
        Sample(0.1, "free", 200, 900.0, served="stale", trace_id="b" * 32),
        Sample(0.2, "free", 0, 10_000.0),  # nothing came back: no trace id to show
    ]
    report = summarize(samples, planned=3, duration_s=1.0, elapsed_s=1.0)
    assert report["slowest"] == {
        "latency_ms": 900.0,
        "status": 200,
        "served": "stale",
        "trace_id": "b" * 32,
    }
    assert summarize(samples[2:], planned=1, duration_s=1.0, elapsed_s=1.0)["slowest"] is None
