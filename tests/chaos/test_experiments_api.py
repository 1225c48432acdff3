"""The experiments HTTP API (start, list, read, stop), in memory and on the Firestore emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from shared.chaos.experiments import ExperimentChanged
from shared.chaos.firestore_store import FirestoreExperimentStore
from shared.chaos.runtime import use_runtime
from shared.resilience import events
from shared.resilience.clock import FakeClock
from shared.settings import reset_settings
from tests.chaos.servers import EchoUpstream

START = {"upstream": "echo", "mode": "error", "duration_s": 900}


@pytest.fixture(autouse=True)
def upstreams(chaos_env: pytest.MonkeyPatch, echo_upstream: EchoUpstream) -> None:
    chaos_env.setenv("CHAOS_UPSTREAMS", f"echo={echo_upstream.url},other={echo_upstream.url}")


@pytest.fixture(params=["memory", pytest.param("firestore", marks=pytest.mark.firestore)])
def api_runtime(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[None]:
    if request.param == "memory":
        request.getfixturevalue("fake_runtime")
        yield
        return
    request.getfixturevalue("firestore_env")
    with use_runtime(clock=clock, store=FirestoreExperimentStore()):
        yield


@pytest.mark.usefixtures("api_runtime")
def test_start_list_stop_cycle(proxy_client: FlaskClient, clock: FakeClock) -> None:
    recorder = events.Recorder()
    with events.use_hooks(recorder):
        r = proxy_client.post("/chaos_proxy/_experiments", json=START)
    assert r.status_code == 201
    started = r.get_json()
    assert started["status"] == "active"
    assert started["remaining_s"] == 900.0
    assert r.headers["Location"] == f"/chaos_proxy/_experiments/{started['id']}"
    assert started["expires_at"] == "2027-01-15T08:15:00.000Z"

    # Forwarded traffic gets the mode at once (this instance invalidated its cache).
    forwarded = proxy_client.get("/echo/anything")
    assert forwarded.status_code == 502
    assert forwarded.headers["X-Chaos-Experiment"] == started["id"]
    assert proxy_client.get("/other/anything").status_code == 200

    conflict = proxy_client.post("/_experiments", json=START)
    assert conflict.status_code == 409
    assert conflict.get_json()["active_id"] == started["id"]

    listed = proxy_client.get("/_experiments").get_json()
    assert listed["count"] == 1
    assert [e["id"] for e in listed["experiments"]] == [started["id"]]
    assert proxy_client.get(f"/_experiments/{started['id']}").get_json()["status"] == "active"

    clock.advance(10)
    with events.use_hooks(recorder):
        stopped = proxy_client.delete(f"/chaos_proxy/_experiments/{started['id']}")
    assert stopped.status_code == 200
    assert stopped.get_json()["status"] == "stopped"
    assert proxy_client.get("/echo/anything").status_code == 200
    assert [e.action for e in recorder.of(ExperimentChanged)] == ["started", "stopped"]


@pytest.mark.usefixtures("api_runtime")
def test_experiment_expires_by_itself(proxy_client: FlaskClient, clock: FakeClock) -> None:
    r = proxy_client.post("/_experiments", json={**START, "duration_s": 30})
    assert proxy_client.get("/echo/x").status_code == 502
    clock.advance(30)
    assert proxy_client.get("/echo/x").status_code == 200
    body = proxy_client.get(f"/_experiments/{r.get_json()['id']}").get_json()
    assert body["status"] == "expired"
    assert body["remaining_s"] == 0.0
    # The upstream is free again.
    assert proxy_client.post("/_experiments", json=START).status_code == 201


@pytest.mark.usefixtures("fake_runtime")
def test_slow_and_drop_experiments(proxy_client: FlaskClient, clock: FakeClock) -> None:
    r = proxy_client.post(
        "/_experiments", json={"upstream": "echo", "mode": "slow", "duration_s": 60, "slow_ms": 700}
    )
    assert r.get_json()["slow_ms"] == 700
    assert proxy_client.get("/echo/x").status_code == 200
    assert clock.sleeps == [0.7]
    proxy_client.delete(f"/_experiments/{r.get_json()['id']}")
    proxy_client.post("/_experiments", json={"upstream": "echo", "mode": "drop", "duration_s": 60})
    dropped = proxy_client.get("/echo/x")
    assert dropped.status_code == 504  # no socket in-process: the marked fallback
    assert dropped.headers["X-Chaos-Injected"] == "true"


@pytest.mark.usefixtures("fake_runtime")
@pytest.mark.parametrize(
    ("body", "parameter"),
    [({}, "upstream"), ({**START, "upstream": "_nope"}, "upstream"),
     ({**START, "mode": "ok"}, "mode"), ({**START, "duration_s": 14401}, "duration_s"),
     ({**START, "slow_ms": 5}, "slow_ms"), ({**START, "x": 1}, "x")],
)  # fmt: skip
def test_start_validation(
    proxy_client: FlaskClient, body: dict[str, object], parameter: str
) -> None:
    r = proxy_client.post("/_experiments", json=body)
    assert r.status_code == 400
    assert r.get_json()["parameter"] == parameter


@pytest.mark.usefixtures("fake_runtime")
def test_start_for_an_upstream_not_configured_is_404(proxy_client: FlaskClient) -> None:
    r = proxy_client.post("/_experiments", json={**START, "upstream": "nope"})
    assert r.status_code == 404
    assert r.get_json()["error"] == "unknown_upstream"
    assert r.get_json()["configured"] == ["echo", "other"]


@pytest.mark.usefixtures("fake_runtime")
def test_unknown_id_and_methods(proxy_client: FlaskClient) -> None:
    r = proxy_client.delete("/_experiments/" + "0" * 32)
    assert r.status_code == 404
    assert r.get_json()["error"] == "experiment_not_found"
    r = proxy_client.put("/_experiments")
    assert (r.status_code, r.headers["Allow"]) == (405, "GET, POST, DELETE")
    assert proxy_client.post("/_experiments/" + "0" * 32).status_code == 405
    assert proxy_client.get("/_experiments?limit=0").status_code == 400


@pytest.mark.usefixtures("fake_runtime")
def test_stop_and_list_stay_possible_with_the_switch_off(
    proxy_client: FlaskClient, chaos_env: pytest.MonkeyPatch
) -> None:
    started = proxy_client.post("/_experiments", json=START).get_json()
    chaos_env.setenv("CHAOS_ENABLED", "false")
    reset_settings()  # as a redeploy with the switch off would
    assert proxy_client.delete("/_experiments?upstream=echo").status_code == 200
    assert proxy_client.get("/_experiments").status_code == 200
    assert proxy_client.delete(f"/_experiments/{started['id']}").status_code == 200
    assert proxy_client.post("/_experiments", json=START).status_code == 403


@pytest.mark.usefixtures("api_runtime")
def test_stop_by_upstream_and_name(proxy_client: FlaskClient, clock: FakeClock) -> None:
    """``DELETE /_experiments?upstream=&name=`` ends what a playbook started, without its id."""
    recorder = events.Recorder()
    echo = proxy_client.post("/_experiments", json={**START, "name": "outage-1"}).get_json()
    other = proxy_client.post("/_experiments", json={**START, "upstream": "other"}).get_json()
    assert echo["name"] == "outage-1"
    assert other["name"] is None
    assert proxy_client.get("/echo/x").status_code == 502

    nothing = proxy_client.delete("/_experiments?name=outage-2")
    assert (nothing.status_code, nothing.get_json()) == (200, {"stopped": [], "count": 0})
    clock.advance(5)
    with events.use_hooks(recorder):
        r = proxy_client.delete("/chaos_proxy/_experiments?upstream=echo&name=outage-1")
    assert r.status_code == 200
    assert r.get_json() == {"stopped": [echo["id"]], "count": 1}
    assert [(e.action, e.experiment_id) for e in recorder.of(ExperimentChanged)] == [
        ("stopped", echo["id"])
    ]
    assert proxy_client.get("/echo/x").status_code == 200  # seen at once on this instance
    assert proxy_client.get("/other/x").status_code == 502
    assert proxy_client.get(f"/_experiments/{echo['id']}").get_json()["status"] == "stopped"
    # Idempotent: stopping again stops nothing.
    assert proxy_client.delete("/_experiments?upstream=echo").get_json()["stopped"] == []
    # No selector: every active experiment.
    assert proxy_client.delete("/_experiments").get_json()["stopped"] == [other["id"]]
    assert proxy_client.get("/other/x").status_code == 200


@pytest.mark.usefixtures("fake_runtime")
@pytest.mark.parametrize(
    ("query", "parameter"), [("upstream=_x", "upstream"), ("name=A", "name"), ("id=1", "id")]
)
def test_stop_selector_validation(proxy_client: FlaskClient, query: str, parameter: str) -> None:
    r = proxy_client.delete(f"/_experiments?{query}")
    assert (r.status_code, r.get_json()["parameter"]) == (400, parameter)
