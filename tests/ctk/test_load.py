"""run_load / start_load / stop_load against small local servers (Locust in its own process)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.chaos.ctk import load
from shared.chaos.ctk.errors import InvalidArgument
from tests.ctk.servers import FakeGraphAsk, serving

pytestmark = pytest.mark.slow


def test_open_model_keeps_the_rate_when_the_service_is_slow() -> None:
    # 300 ms per answer at 20 req/s: a closed model with few users would send far fewer.
    with serving(FakeGraphAsk(miss_delay_s=0.3, hit_delay_s=0.3)) as url:
        report = load.run_load(url, rate_rpm=1200, duration_s=2.0, progress_s=0.5)
    assert report["planned"] == 40
    assert report["sent"] == 40
    assert report["answered_ratio"] == 1.0
    assert report["latency_ms"]["p50"] >= 290.0
    assert report["offered_rpm"] == pytest.approx(1200.0)


def test_latency_counts_from_the_scheduled_time_no_coordinated_omission() -> None:
    # Two requests in flight at most: later arrivals wait for a slot, and that wait is latency.
    with serving(FakeGraphAsk(miss_delay_s=0.3, hit_delay_s=0.3)) as url:
        report = load.run_load(url, rate_rpm=1200, duration_s=1.0, max_in_flight=2)
    assert report["sent"] == 20
    assert report["latency_ms"]["p99"] > 1500.0  # ~3 s of work scheduled within 1 s
    assert report["latency_ms"]["p50"] > 600.0


def test_the_admission_queue_is_read_from_the_status_page() -> None:
    fake = FakeGraphAsk()
    with serving(fake) as url:
        report = load.run_load(url, rate_rpm=600, duration_s=2.5, status_url=f"{url}/_status")
    assert report["queue_length_max"] is not None
    assert 1 <= report["queue_length_max"] <= 1 + 25
    lengths = [row["queue_length_max"] for row in report["timeline"]]
    assert any(n is not None for n in lengths)


def test_refusals_and_retry_after_per_plan() -> None:
    def behaviour(plan: str, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
        if plan == "free":
            return 429, {"error": "rate_limited"}, {"Retry-After": "2"}
        return 200, {"served": "normal", "model": "m", "cache": "miss", "queue_wait_ms": 0.5}, {}

    with serving(FakeGraphAsk(behaviour=behaviour)) as url:
        report = load.run_load(url, rate_rpm=600, duration_s=1.0, premium_share=0.5)
    assert report["sent"] == 10
    assert report["plans"]["premium"]["answered_ratio"] == 1.0
    assert report["plans"]["free"]["refused"] == 5
    assert report["refused"]["ratio"] == 0.5
    assert report["refused"]["with_retry_after_ratio"] == 1.0
    assert report["refused"]["retry_after_s_max"] == 2.0
    assert report["served_per_base_rpm"] == pytest.approx(0.5, rel=0.2)


def test_a_started_load_is_joined_by_the_next_run() -> None:
    fake = FakeGraphAsk()
    with serving(fake) as url:
        started = load.start_load("surge-test", url, rate_rpm=600, duration_s=1.0)
        assert started["planned"] == 10
        with pytest.raises(InvalidArgument, match="already running"):
            load.start_load("surge-test", url, rate_rpm=600, duration_s=1.0)
        report = load.run_load(url, rate_rpm=60, duration_s=1.0, join="surge-test")
        assert report["label"] == "surge-test"
        assert report["sent"] == 10  # the surge's own report, not a 1-request run
        # Nothing left to join: the same call now sends its own load.
        own = load.run_load(url, rate_rpm=120, duration_s=1.0, join="surge-test")
        assert own["sent"] == 2
    assert fake.requests == 12


def test_stop_load_ends_a_running_load_and_is_idempotent() -> None:
    with serving(FakeGraphAsk()) as url:
        load.start_load("long", url, rate_rpm=60, duration_s=120.0)
        time.sleep(0.2)
        assert load.stop_load("long") == {"name": "long", "stopped": True}
        assert load.stop_load("long") == {"name": "long", "stopped": False}


def test_only_loopback_targets() -> None:
    with pytest.raises(InvalidArgument, match=r"127\.0\.0\.1 or localhost"):
        load.run_load("http://10.0.0.1/graph_ask", rate_rpm=60, duration_s=1.0)
    with pytest.raises(InvalidArgument, match="rate_rpm must be"):
        load.run_load("http://127.0.0.1:1/graph_ask", rate_rpm=0, duration_s=1.0)
