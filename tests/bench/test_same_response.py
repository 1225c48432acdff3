"""The throughput floor (``bench/hello``'s ``same_response``) must give chaos_delay's response.

If chaos_delay's answer grows a field or a header and the floor does not, the benchmark would
credit chaos_delay's own work with the cost of the bigger response.
"""

from __future__ import annotations

import functions_framework
import pytest

from bench.bench_chaos import HELLO


@pytest.fixture
def chaos_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAOS_ENABLED", "true")
    monkeypatch.setenv("CHAOS_AUTH", "none")
    monkeypatch.delenv("K_SERVICE", raising=False)


@pytest.mark.usefixtures("chaos_enabled")
def test_same_response_matches_chaos_delay_at_p0_d0() -> None:
    chaos = functions_framework.create_app(
        target="chaos_delay", source="functions/chaos_delay/main.py"
    ).test_client()
    floor = functions_framework.create_app(target="same_response", source=str(HELLO)).test_client()
    got, want = floor.get("/?p=0&d=0"), chaos.get("/?p=0&d=0")
    assert (got.status_code, want.status_code) == (200, 200)
    assert sorted(got.headers.keys()) == sorted(want.headers.keys())
    assert got.headers["Cache-Control"] == want.headers["Cache-Control"]
    got_body, want_body = got.get_json(), want.get_json()
    assert got_body["trace_id"] == got.headers["X-Trace-Id"]
    assert want_body["trace_id"] == want.headers["X-Trace-Id"]
    got_body.pop("trace_id")
    want_body.pop("trace_id")
    assert got_body == want_body
    assert len(got.data) == len(want.data)  # the same bytes but for the (fixed-length) trace id
