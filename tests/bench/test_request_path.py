"""The request path's shortcuts (see bench_instructions) keep its behaviour.

``@observed`` extracts the caller's trace only when a propagation header is present; this holds
only while the installed propagators read no other header, which the first test checks.
"""

from __future__ import annotations

import functions_framework
import pytest
from flask.testing import FlaskClient

from shared.obs.http import _PROPAGATION_KEYS

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def test_the_shortcut_checks_every_header_the_propagators_read() -> None:
    from opentelemetry import propagate

    read = {name.lower() for name in propagate.get_global_textmap().fields}
    # tracestate means nothing without a traceparent (W3C), so its absence alone may skip.
    checked = {key[5:].lower().replace("_", "-") for key in _PROPAGATION_KEYS}
    assert read - {"tracestate"} <= checked


@pytest.fixture
def chaos_delay(monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setenv("CHAOS_ENABLED", "true")
    monkeypatch.setenv("CHAOS_AUTH", "none")
    monkeypatch.delenv("K_SERVICE", raising=False)
    app = functions_framework.create_app(
        target="chaos_delay", source="functions/chaos_delay/main.py"
    )
    return app.test_client()


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": f"00-{TRACE}-{PARENT}-01"},
        {"X-Cloud-Trace-Context": f"{TRACE}/{int(PARENT, 16)};o=1"},
    ],
    ids=["w3c", "cloud"],
)
def test_a_callers_trace_is_continued(chaos_delay: FlaskClient, headers: dict[str, str]) -> None:
    response = chaos_delay.get("/?p=0&d=0", headers=headers)
    assert response.status_code == 200
    assert response.headers["X-Trace-Id"] == TRACE
    assert response.get_json()["trace_id"] == TRACE


def test_without_a_header_each_request_starts_its_own_trace(chaos_delay: FlaskClient) -> None:
    first, second = chaos_delay.get("/?p=0&d=0"), chaos_delay.get("/?p=0&d=0")
    ids = [r.headers["X-Trace-Id"] for r in (first, second)]
    assert ids[0] != ids[1]
    assert [r.get_json()["trace_id"] for r in (first, second)] == ids
    assert all(len(i) == 32 and int(i, 16) != 0 for i in ids)
