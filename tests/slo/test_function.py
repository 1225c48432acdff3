"""The whole Cloud Function through functions-framework, on the local source and the emulator."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from shared.resilience.clock import FakeClock
from shared.slo import service
from shared.slo.local_store import LocalStore
from tests.slo.conftest import FIXTURES
from tests.slo.helpers import TICK, deliveries, traffic
from tests.slo.slack_server import SlackServer

ROOT = Path(__file__).resolve().parents[2]
SOURCE = str(ROOT / "functions" / "slo_monitor" / "main.py")


def client() -> Any:
    import functions_framework

    return functions_framework.create_app(target="slo_monitor", source=SOURCE).test_client()


@pytest.mark.firestore
def test_function_end_to_end_on_the_local_stack(
    firestore_client: Any,
    tmp_path: Path,
    slack: SlackServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = tmp_path / "metrics.db"
    monkeypatch.setenv("SLO_CONFIG", str(ROOT / "config" / "slos.local.yaml"))
    monkeypatch.setenv("LOCAL_METRICS_DB", str(db))
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url)
    monkeypatch.setenv("ALERT_LINK_URL", "http://127.0.0.1:5173/app/admin/chaos-testing")
    # The monitor reads a fake clock: 40 s into a window, the run judges the 5 minutes before it
    # (no waiting out a boundary in real time).
    clock = FakeClock(TICK + 40)
    service.reset(clock=clock)
    end = TICK
    store = LocalStore(db)
    # graphAsk: slow and failing; insights: healthy.
    traffic(store, "graphAsk", start=end - 290, end=end - 10, count=200, errors=20, slow=40)
    traffic(store, "insights", start=end - 290, end=end - 10, count=200)
    deliveries(store, start=end - 290, end=end - 10, delivered=200)

    app = client()
    response = app.post("/")
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["evaluated"] == 4
    assert sorted(body["violations"]["new"]) == [
        "general-errors",
        "graphAsk-errors",
        "graphAsk-latency",
    ]
    assert body["ok"] == ["insights-delivery"]
    assert len(body["alerts"]["sent"]) == 3
    results = {r["slo"]: r for r in body["results"]}
    assert results["graphAsk-latency"]["observed"] == pytest.approx(2000.0)
    assert results["graphAsk-latency"]["objective"] == "p95 < 900 ms"
    assert results["graphAsk-errors"]["observed"] == pytest.approx(0.9)
    assert response.headers.get("X-Trace-Id")
    assert len(slack.delivered) == 3

    clock.advance(30)
    again = app.post("/")  # a retry of the same tick
    assert again.status_code == 200
    assert len(slack.delivered) == 3
    violations = list(firestore_client.collection("slo_violations").stream())
    assert len(violations) == 3
    assert len(list(firestore_client.collection("slo_runs").stream())) == 2


def test_broken_config_answers_config_invalid_and_logs_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLO_CONFIG", str(FIXTURES / "unknown_method.yaml"))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-not-used")
    caplog.set_level(logging.ERROR, logger="shared.slo.service")
    app = client()
    for _ in range(3):
        response = app.post("/")
        assert response.status_code == 500
        body = response.get_json()
        assert body["error"] == "config_invalid"
        assert body["problems"] == [
            "slos[0] (api-errors).method: must be one of good_bad_ratio, latency_percentile; "
            "got 'distribution_cutt'"
        ]
        assert "Traceback" not in response.get_data(as_text=True)
    logged = [r for r in caplog.records if r.name == "shared.slo.service"]
    assert len(logged) == 1
    assert "distribution_cutt" in logged[0].getMessage()


def test_bad_settings_are_config_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_COOLDOWN_S", "an hour")
    monkeypatch.setenv("FIRESTORE_TIMEOUT_S", "600")
    response = client().post("/")
    assert response.status_code == 500
    assert response.get_json()["problems"] == [
        "ALERT_COOLDOWN_S='an hour': must be a number from 0 to 604800",
        "FIRESTORE_TIMEOUT_S='600': must be a number from 0.5 to 30",
    ]


def test_other_methods_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    response = client().put("/")
    assert response.status_code == 405
    assert response.get_json()["allowed"] == ["GET", "POST"]


def test_entry_module_is_cheap_to_import() -> None:
    import subprocess
    import sys

    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]);"
        "heavy = [m for m in ('google.cloud.firestore', 'google.cloud.monitoring_v3', 'yaml',"
        " 'shared.slo.monitor', 'shared.slo.config') if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, SOURCE], cwd=ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]"
