"""Forwarding to a real local upstream, in-process, with and without experiments."""

from __future__ import annotations

import base64
import gzip

import pytest
from flask.testing import FlaskClient

from shared.chaos.experiments import MemoryExperimentStore
from shared.chaos.params import ExperimentSpec
from shared.resilience.clock import FakeClock
from tests import services
from tests.chaos.servers import EchoUpstream

pytestmark = pytest.mark.usefixtures("fake_runtime")


@pytest.fixture(autouse=True)
def upstreams(chaos_env: pytest.MonkeyPatch, echo_upstream: EchoUpstream) -> None:
    down = f"http://127.0.0.1:{services.free_port()}"
    chaos_env.setenv("CHAOS_UPSTREAMS", f"echo={echo_upstream.url},down={down}")


def test_round_trip_of_method_path_query_headers_body(proxy_client: FlaskClient) -> None:
    r = proxy_client.post(
        "/chaos_proxy/echo/v1/chat%2Fx/?q=1&q=2&s=%20",
        data=b"\x00binary body\xff",
        headers={
            "Authorization": "Bearer app-key",
            "X-Custom": "kept",
            "Connection": "X-Private",
            "X-Private": "hop",
            "X-Forwarded-For": "10.1.2.3",
            "traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01",
        },
        content_type="application/octet-stream",
    )
    assert r.status_code == 200
    echoed = r.get_json()
    headers = {k.lower(): v for k, v in echoed["headers"]}
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/v1/chat%2Fx/"
    assert echoed["query"] == "q=1&q=2&s=%20"
    assert base64.b64decode(echoed["body_b64"]) == b"\x00binary body\xff"
    assert headers["authorization"] == "Bearer app-key"
    assert headers["x-custom"] == "kept"
    assert headers["content-type"] == "application/octet-stream"
    assert "x-private" not in headers
    assert headers["host"] == "127.0.0.1:" + proxy_upstream_port(proxy_client)
    assert headers["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    assert headers["x-forwarded-host"] == "localhost"
    # Same trace, new span for the outgoing call.
    assert headers["traceparent"].startswith("00-" + "ab" * 16 + "-")
    assert headers["traceparent"] != "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    assert headers["x-cloud-trace-context"].startswith("ab" * 16 + "/")
    # Response side: end-to-end headers kept (both cookies), hop-by-hop stripped.
    assert r.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2; Path=/"]
    assert r.headers["X-Upstream"] == "echo"
    assert "Keep-Alive" not in r.headers
    assert "X-Hop" not in r.headers
    assert r.headers["X-Trace-Id"] == "ab" * 16


def proxy_upstream_port(client: FlaskClient) -> str:
    import os

    return os.environ["CHAOS_UPSTREAMS"].split(",")[0].rsplit(":", 1)[1]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_every_method_is_forwarded(proxy_client: FlaskClient, method: str) -> None:
    r = proxy_client.open("/echo/x", method=method, data=b"{}" if method != "GET" else None)
    assert r.status_code == 200
    assert r.get_json()["method"] == method


def test_head_and_statuses_pass_through(proxy_client: FlaskClient) -> None:
    assert proxy_client.head("/echo/x").status_code == 200
    for status in (201, 404, 429, 500, 503):
        r = proxy_client.get(f"/echo/status/{status}")
        assert r.status_code == status
        assert r.get_json() == {"status": status}
        assert "X-Chaos-Injected" not in r.headers  # a real upstream answer, not ours


def test_encoded_bodies_pass_undecoded(proxy_client: FlaskClient) -> None:
    r = proxy_client.get("/echo/gzip", headers={"Accept-Encoding": "gzip"})
    assert r.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(r.data) == b"compressed " * 50
    assert int(r.headers["Content-Length"]) == len(r.data)


def test_chunked_upstream_answer_is_streamed(proxy_client: FlaskClient) -> None:
    r = proxy_client.get("/echo/chunked")
    assert r.status_code == 200
    assert r.get_json()["path"] == "/chunked"
    assert "Transfer-Encoding" not in r.headers


def test_no_content_type_is_not_invented(proxy_client: FlaskClient) -> None:
    r = proxy_client.get("/echo/nocontenttype")
    assert r.status_code == 204
    assert "Content-Type" not in r.headers


def test_unknown_upstream_lists_configured_names(proxy_client: FlaskClient) -> None:
    r = proxy_client.get("/chaos_proxy/evil.example.com/x")
    body = r.get_json()
    assert r.status_code == 404
    assert body["error"] == "unknown_upstream"
    assert body["configured"] == ["down", "echo"]


def test_urls_from_the_request_are_never_followed(proxy_client: FlaskClient) -> None:
    for path in ("/http://127.0.0.1:1/x", "/echo/../down/x", "/%65cho/x"):
        r = proxy_client.get(path)
        assert r.status_code in (400, 404)
        assert r.get_json()["error"] in ("unknown_upstream", "invalid_parameter")


def test_upstream_down_is_a_json_502(proxy_client: FlaskClient) -> None:
    r = proxy_client.get("/down/x")
    body = r.get_json()
    assert r.status_code == 502
    assert body["error"] == "upstream_unavailable"
    assert body["upstream"] == "down"
    assert "X-Chaos-Injected" not in r.headers
    assert "Traceback" not in r.get_data(as_text=True)


def test_upstream_timeout_is_a_json_504(
    proxy_client: FlaskClient, chaos_env: pytest.MonkeyPatch
) -> None:
    chaos_env.setenv("CHAOS_UPSTREAM_TIMEOUT_S", "0.2")
    r = proxy_client.get("/echo/sleep/1500")
    assert r.status_code == 504
    assert r.get_json()["error"] == "upstream_timeout"


# -- experiments shape forwarded traffic ------------------------------------------------------


def test_error_experiment_fails_forwarded_traffic_until_it_expires(
    proxy_client: FlaskClient, store: MemoryExperimentStore, clock: FakeClock
) -> None:
    experiment = store.start(ExperimentSpec("echo", "error", 60), now=clock.time())
    clock.advance(2.0)  # past the cache TTL of any earlier lookup
    r = proxy_client.get("/echo/x")
    assert r.status_code == 502
    assert r.headers["X-Chaos-Injected"] == "true"
    assert r.headers["X-Chaos-Experiment"] == experiment.id
    assert r.get_json()["experiment_id"] == experiment.id
    # Other upstreams are untouched.
    assert proxy_client.get("/down/x").get_json()["error"] == "upstream_unavailable"
    clock.advance(58.0)
    assert proxy_client.get("/echo/x").status_code == 200


def test_slow_experiment_delays_then_forwards(
    proxy_client: FlaskClient, store: MemoryExperimentStore, clock: FakeClock
) -> None:
    experiment = store.start(ExperimentSpec("echo", "slow", 60, 1500), now=clock.time())
    r = proxy_client.get("/echo/x")
    assert r.status_code == 200
    assert clock.sleeps == [1.5]
    assert r.headers["X-Chaos-Experiment"] == experiment.id
    assert "X-Chaos-Injected" not in r.headers


def test_kill_switch_off_forwarding_passes_untouched(
    proxy_client: FlaskClient,
    store: MemoryExperimentStore,
    clock: FakeClock,
    chaos_env: pytest.MonkeyPatch,
) -> None:
    store.start(ExperimentSpec("echo", "error", 60), now=clock.time())
    chaos_env.setenv("CHAOS_ENABLED", "false")
    r = proxy_client.get("/echo/x")
    assert r.status_code == 200
    assert "X-Chaos-Experiment" not in r.headers
