"""Where the webhook URL comes from, and the handler's retry-me answers (503)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import grpc
import pytest
import requests

from shared.resilience.clock import FakeClock
from shared.slo import service
from shared.slo.backends.cloud_monitoring import CloudMonitoringBackend
from shared.slo.config import load_config
from shared.slo.errors import AlertDeliveryError
from shared.slo.local_store import LocalStore
from shared.slo.monitor import Monitor
from shared.slo.recording import FirestoreRecorder
from shared.slo.secrets import SecretWebhookUrl, webhook_url_source
from shared.slo.settings import Settings
from tests.slo.fake_monitoring import FakeMetricService
from tests.slo.helpers import TICK, traffic
from tests.slo.test_function import client

ROOT = Path(__file__).resolve().parents[2]


class _SecretManager(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []
    value: ClassVar[str] = "https://hooks.slack.example/services/T1/B1/tok"

    def do_GET(self) -> None:
        self.paths.append(self.path)
        status = 200 if "/secrets/slack/" in self.path else 404
        data = base64.b64encode(self.value.encode()).decode()
        body = json.dumps({"name": self.path, "payload": {"data": data}}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def secret_manager() -> Iterator[str]:
    _SecretManager.paths = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SecretManager)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_secret_is_fetched_once_over_rest(secret_manager: str) -> None:
    secret = SecretWebhookUrl("projects/p/secrets/slack", session=requests.Session(),
                              endpoint=secret_manager)  # fmt: skip
    assert secret() == _SecretManager.value
    assert secret() == _SecretManager.value
    assert _SecretManager.paths == ["/v1/projects/p/secrets/slack/versions/latest:access"]
    assert "hooks" not in repr(secret)


def test_missing_secret_is_a_delivery_error(secret_manager: str) -> None:
    secret = SecretWebhookUrl("projects/p/secrets/other/versions/3", session=requests.Session(),
                              endpoint=secret_manager)  # fmt: skip
    with pytest.raises(
        AlertDeliveryError, match="HTTP 404 for projects/p/secrets/other/versions/3"
    ):
        secret()


def test_url_wins_over_secret_and_settings_hide_it() -> None:
    source = webhook_url_source("https://hooks/x", "projects/p/secrets/s")
    assert source is not None
    assert source() == "https://hooks/x"
    assert webhook_url_source(None, None) is None
    assert isinstance(webhook_url_source(None, "projects/p/secrets/s"), SecretWebhookUrl)
    env = {"SLACK_WEBHOOK_URL": "https://hooks/secret-path", "ALERT_COOLDOWN_S": "600",
           "SLO_CONFIG": "config/not-here.yaml"}  # fmt: skip
    settings = Settings.from_env(env)
    assert settings.alert_cooldown_s == 600
    assert "secret-path" not in repr(settings)
    # A relative path not found from the working directory is taken from the project root.
    assert settings.config_path == ROOT / "config" / "not-here.yaml"
    assert Settings.from_env({}).config_path == ROOT / "config" / "slos.yaml"
    assert Settings.from_env({"SLO_CONFIG": "/etc/slos.yaml"}).config_path == Path("/etc/slos.yaml")


def test_unreachable_firestore_answers_503_well_inside_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Defect 1: nothing listens where Firestore should be; the whole POST, timed."""
    store = LocalStore(tmp_path / "m.db")
    traffic(store, "graphAsk", start=TICK - 300, end=TICK, count=100, errors=10)
    store.close()
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-unreachable")
    monkeypatch.setenv("SLO_CONFIG", str(ROOT / "config" / "slos.local.yaml"))
    monkeypatch.setenv("LOCAL_METRICS_DB", str(tmp_path / "m.db"))
    service.reset(clock=FakeClock(TICK + 1))
    started = time.monotonic()
    response = client().post("/")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "record_failed"
    assert body["message"].startswith("Firestore failed to read SLO states: slo.read_states:")
    # The default bound is 10 s per step; the function's timeout is 120 s (it took ~280 s).
    assert elapsed < 30, f"answered after {elapsed:.1f} s"
    assert "slo_monitor run not recorded" in caplog.text


@pytest.mark.firestore
def test_monitoring_unavailable_answers_503_with_the_summary(
    firestore_client: Any, fake_monitoring: FakeMetricService, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(ROOT / "config" / "slos.yaml")
    fake_monitoring.fail_next(*[grpc.StatusCode.UNAVAILABLE] * 200)
    source = CloudMonitoringBackend(fake_monitoring.client(), "demo", timeout=5, retry=None)

    def build(settings: Settings, **_: Any) -> Monitor:
        recorder = FirestoreRecorder(firestore_client)
        return Monitor(config, lambda _: source, recorder, None)

    monkeypatch.setattr(service, "build_monitor", build)
    response = client().post("/")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "slo_errors"
    assert body["summary"]["evaluated"] == 4
    assert body["summary"]["outcomes"]["error"] == 4
    assert set(body["summary"]["errors"]) == {
        "graphAsk-latency", "graphAsk-errors", "insights-delivery", "general-errors"
    }  # fmt: skip


@pytest.mark.firestore
def test_a_monitor_that_cannot_measure_answers_503_and_logs_why(
    firestore_client: Any,
    fake_monitoring: FakeMetricService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A bad filter is a permanent error: it used to answer 200 with no log line (blind)."""
    config = load_config(ROOT / "config" / "slos.yaml")
    fake_monitoring.fail_next(*[grpc.StatusCode.INVALID_ARGUMENT] * 200)
    source = CloudMonitoringBackend(fake_monitoring.client(), "demo", timeout=5)

    def build(settings: Settings, **_: Any) -> Monitor:
        return Monitor(config, lambda _: source, FirestoreRecorder(firestore_client), None)

    monkeypatch.setattr(service, "build_monitor", build)
    caplog.set_level(logging.ERROR, logger="shared.slo.service")
    response = client().post("/")
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "slo_errors"
    assert body["message"] == (
        "could not measure graphAsk-latency, graphAsk-errors, insights-delivery, "
        "general-errors; retry"
    )
    assert body["summary"]["outcomes"] == {"ok": 0, "violation": 0, "no_data": 0, "error": 4}
    (line,) = [r.getMessage() for r in caplog.records if r.name == "shared.slo.service"]
    assert line.startswith("slo_monitor could not measure 4 SLO(s): graphAsk-latency (5 of 5")
    assert "INVALID_ARGUMENT" in line
    # A permanent error is not retried by the client: one call per query, not a minute of them.
    assert len(fake_monitoring.requests) == 20  # 4 SLOs x 5 windows, the first query fails
