"""Both functions in-process (functions-framework test client) on a fake clock."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from shared.chaos.runtime import Runtime
from shared.obs import RequestRecord, use_request_sinks
from shared.resilience.clock import FakeClock
from shared.settings import reset_settings

pytestmark = pytest.mark.usefixtures("fake_runtime")


def test_delay_ok_body(delay_client: FlaskClient, clock: FakeClock) -> None:
    r = delay_client.get("/?p=0&d=300&seed=5")
    body = r.get_json()
    assert r.status_code == 200
    assert "X-Chaos-Injected" not in r.headers
    assert body["ok"] is True
    assert body["injected_status"] is None
    assert 300 <= body["delay_ms"] <= 600
    assert body["delay_ms"] == pytest.approx(clock.sleeps[0] * 1000, abs=0.001)
    assert body["trace_id"] == r.headers["X-Trace-Id"]
    assert len(body["trace_id"]) == 32


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_delay_injected_error_is_marked(delay_client: FlaskClient, status: int) -> None:
    r = delay_client.get(f"/?p=1&d=10&status={status}")
    body = r.get_json()
    assert r.status_code == status
    assert r.headers["X-Chaos-Injected"] == "true"
    assert body["ok"] is False
    assert body["injected_status"] == status
    assert body["error"] == "injected_error"
    assert ("Retry-After" in r.headers) is (status in (429, 503))


def test_delay_default_status_is_500_and_retry_after_configurable(
    delay_client: FlaskClient,
) -> None:
    assert delay_client.get("/?p=1").status_code == 500
    r = delay_client.get("/?p=1&status=429&retry_after=30")
    assert r.headers["Retry-After"] == "30"


def test_delay_post_json_body(delay_client: FlaskClient) -> None:
    r = delay_client.post("/", json={"p": 1, "d": 5, "status": 503, "seed": 9})
    assert r.status_code == 503
    assert r.get_json()["d"] == 5
    # Body fields win over the query.
    r = delay_client.post("/?p=1", json={"p": 0})
    assert r.status_code == 200


def test_delay_seed_reproduces_delay_and_outcome(delay_client: FlaskClient) -> None:
    runs = [delay_client.get("/?p=0.5&d=100&seed=1234").get_json() for _ in range(3)]
    assert len({(b["planned_delay_ms"], b["status"]) for b in runs}) == 1


@pytest.mark.parametrize(
    ("query", "parameter"),
    [("p=abc", "p"), ("p=1.5", "p"), ("d=-1", "d"), ("d=1.5", "d"), ("d=10001", "d"),
     ("status=418", "status"), ("seed=x", "seed"), ("foo=1", "foo"), ("p=1&p=0", "p")],
)  # fmt: skip
def test_delay_bad_input_is_a_json_400_naming_the_parameter(
    delay_client: FlaskClient, query: str, parameter: str
) -> None:
    r = delay_client.get(f"/?{query}")
    body = r.get_json()
    assert r.status_code == 400
    assert body["error"] == "invalid_parameter"
    assert body["parameter"] == parameter
    assert body["allowed"]
    assert parameter in body["message"]


@pytest.mark.parametrize("payload", [b"[1, 2]", b"{bad json", b"\xff\xfe", b"[" * 5000, b'"x"'])
def test_delay_bad_body(delay_client: FlaskClient, payload: bytes) -> None:
    r = delay_client.post("/", data=payload, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["parameter"] == "body"


def test_delay_body_too_large(delay_client: FlaskClient) -> None:
    r = delay_client.post("/", data=b" " * 70_000, content_type="application/json")
    assert r.status_code == 400
    assert r.get_json()["allowed"] == "a JSON object of at most 65536 bytes"


def test_delay_cap_from_environment(
    delay_client: FlaskClient, chaos_env: pytest.MonkeyPatch
) -> None:
    chaos_env.setenv("CHAOS_MAX_DELAY_MS", "50")
    assert delay_client.get("/?d=50&p=0").status_code == 200
    r = delay_client.get("/?d=51")
    assert r.get_json()["allowed"] == "0..50"


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(
    delay_client: FlaskClient, proxy_client: FlaskClient, method: str
) -> None:
    for client in (delay_client, proxy_client):
        r = client.open("/", method=method)
        assert r.status_code == 405
        assert r.get_json()["allowed"] == ["GET", "POST"]
        assert r.headers["Allow"] == "GET, POST"  # RFC 9110 §15.5.6 (defect 4 of issue 12)
    r = proxy_client.open("/_experiments/" + "0" * 32, method="POST")
    assert (r.status_code, r.headers.get("Allow")) == (405, "GET, DELETE")


@pytest.mark.parametrize(
    "path", ["/chaos_delay/%0a", "/chaos_proxy/demo/a%0Ab", "/x%0D%0Ay", "/robots.txt"]
)
def test_paths_the_framework_cannot_route_get_a_json_404_with_trace_and_record(
    delay_client: FlaskClient, proxy_client: FlaskClient, path: str
) -> None:
    # Defect 4 of issue 12: Flask's HTML 404, no trace id, no request record.
    for function, client in (("chaos_delay", delay_client), ("chaos_proxy", proxy_client)):
        records: list[RequestRecord] = []
        with use_request_sinks(records.append):
            r = client.get(path)
        assert r.status_code == 404
        assert r.content_type == "application/json"
        body = r.get_json()
        assert body["error"] == "not_found"
        assert body["trace_id"] == r.headers["X-Trace-Id"]
        assert [(rec.function, rec.status) for rec in records] == [(function, 404)]


def test_request_record_marks_injected_failures(delay_client: FlaskClient) -> None:
    records: list[RequestRecord] = []
    with use_request_sinks(records.append):
        delay_client.get("/?p=1&status=502")
        delay_client.get("/?p=0")
    assert [(r.function, r.status, r.injected) for r in records] == [
        ("chaos_delay", 502, True),
        ("chaos_delay", 200, False),
    ]


# -- chaos_proxy modes -----------------------------------------------------------------------------


def test_proxy_ok_is_the_default(proxy_client: FlaskClient) -> None:
    for url in ("/", "/?mode=ok", "/chaos_proxy", "/chaos_proxy/?mode=ok"):
        r = proxy_client.get(url)
        assert r.status_code == 200
        assert r.get_json()["mode"] == "ok"
        assert "X-Chaos-Injected" not in r.headers


def test_proxy_slow_waits_4s_by_default(proxy_client: FlaskClient, clock: FakeClock) -> None:
    r = proxy_client.get("/?mode=slow")
    assert r.status_code == 200
    assert clock.sleeps == [4.0]
    assert r.get_json()["delay_ms"] == 4000.0
    proxy_client.post("/", json={"mode": "slow", "slow_ms": 1500})
    assert clock.sleeps[-1] == 1.5


def test_proxy_error_is_an_injected_502(proxy_client: FlaskClient) -> None:
    r = proxy_client.get("/?mode=error")
    assert r.status_code == 502
    assert r.headers["X-Chaos-Injected"] == "true"
    assert r.get_json()["error"] == "injected_error"


def test_proxy_drop_without_a_socket_holds_then_answers_marked_504(
    proxy_client: FlaskClient, clock: FakeClock, chaos_env: pytest.MonkeyPatch
) -> None:
    chaos_env.setenv("CHAOS_DROP_HOLD_S", "12")
    r = proxy_client.get("/?mode=drop")
    assert clock.sleeps == [12.0]
    assert r.status_code == 504
    assert r.headers["X-Chaos-Injected"] == "true"
    assert r.get_json()["held_s"] == 12.0


def test_proxy_unknown_routes(proxy_client: FlaskClient) -> None:
    # Defect 10 of issue 12: a name starting with "_" is an unknown upstream, as the spec says.
    r = proxy_client.get("/_admin")
    assert r.status_code == 404
    assert r.get_json()["error"] == "unknown_upstream"
    assert r.get_json()["upstream"] == "_admin"
    r = proxy_client.get("/_experiments/a/b")
    assert r.status_code == 404
    assert r.get_json()["message"] == "no route for '/chaos_proxy/_experiments/a/b'"


# -- kill switch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, "false", "nonsense"])
def test_kill_switch_off_refuses_injection(
    delay_client: FlaskClient,
    proxy_client: FlaskClient,
    chaos_env: pytest.MonkeyPatch,
    value: str | None,
) -> None:
    if value is None:
        chaos_env.delenv("CHAOS_ENABLED")
    else:
        chaos_env.setenv("CHAOS_ENABLED", value)
    for client, url in (
        (delay_client, "/?p=1"),
        (proxy_client, "/?mode=error"),
        (proxy_client, "/?mode=ok"),
    ):
        r = client.get(url)
        body = r.get_json()
        assert r.status_code == 403
        assert body["error"] == "chaos_disabled"
        assert "CHAOS_ENABLED" in body["reason"]
    r = proxy_client.post(
        "/_experiments", json={"upstream": "llm", "mode": "error", "duration_s": 60}
    )
    assert r.status_code == 403


def test_kill_switch_is_read_once_per_instance(
    delay_client: FlaskClient, chaos_env: pytest.MonkeyPatch
) -> None:
    assert delay_client.get("/?p=0").status_code == 200
    chaos_env.setenv("CHAOS_ENABLED", "false")
    assert delay_client.get("/?p=0").status_code == 200  # a redeploy changes it: a new instance
    reset_settings()
    assert delay_client.get("/?p=0").status_code == 403
    chaos_env.setenv("CHAOS_ENABLED", "true")
    reset_settings()
    assert delay_client.get("/?p=0").status_code == 200


def test_misconfiguration_is_a_named_500(
    delay_client: FlaskClient, chaos_env: pytest.MonkeyPatch
) -> None:
    chaos_env.setenv("CHAOS_MAX_DELAY_MS", "lots")
    chaos_env.setenv("CHAOS_AUTH", "basic")
    r = delay_client.get("/")
    assert r.status_code == 500
    body = r.get_json()
    assert (body["error"], body["variable"]) == ("chaos_misconfigured", "CHAOS_AUTH")
    assert body["allowed"] == "one of firebase, iam, none"
    assert body["variables"] == ["CHAOS_AUTH", "CHAOS_MAX_DELAY_MS"]
    assert "an integer from 1 to 1800000" in body["message"]


# -- auth with a stub verifier (real tokens: test_auth_emulator.py) --------------------------------


def test_firebase_auth_is_checked_before_the_switch(
    delay_client: FlaskClient, chaos_env: pytest.MonkeyPatch, fake_runtime: Runtime
) -> None:
    chaos_env.setenv("CHAOS_AUTH", "firebase")
    chaos_env.setenv("CHAOS_ENABLED", "false")
    r = delay_client.get("/?p=0")
    assert r.status_code == 401
    assert r.get_json()["error"] == "unauthenticated"


def test_post_body_overrides_the_query(delay_client: FlaskClient) -> None:
    assert delay_client.get("/?p=0&d=0").get_json()["ok"] is True
    r = delay_client.post("/?p=0&d=0", json={"p": 1})
    assert r.status_code == 500
    assert r.get_json()["p"] == 1.0


def test_a_huge_json_integer_is_a_400_naming_p(delay_client: FlaskClient) -> None:
    # Defect 3 of issue 12: {"p": 10**400} overflowed float() and answered 500.
    r = delay_client.post("/", data=b'{"p": 1' + b"0" * 400 + b"}", content_type="application/json")
    assert r.status_code == 400
    assert (r.get_json()["parameter"], r.get_json()["allowed"]) == ("p", "0.0..1.0")
