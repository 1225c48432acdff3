"""Observations from the SQLite request store, and the evaluate CLI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from shared.canary import Observation, observe_local
from shared.canary.cli import main
from shared.obs.requests import RequestRecord
from shared.slo.local_store import LocalStore

CONFIG = """
thresholds:
  max_p95_ms: 800
  max_error_rate: 0.01
  min_requests: 10
  max_p95_ratio: 1.2
stages: [10, 50, 100]
"""


def _fill(store: LocalStore, function: str, latencies: list[float], errors: int) -> None:
    now = time.time()
    store.append_many(
        RequestRecord(function, "GET", "/", 500 if i < errors else 200, latency, "", False, now)
        for i, latency in enumerate(latencies)
    )


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    db = LocalStore(tmp_path / "metrics.db")
    _fill(db, "ask_v2", [float(ms) for ms in range(100, 120)], errors=0)  # p95 118.05
    _fill(db, "ask_v1", [float(ms) for ms in range(50, 70)], errors=0)  # p95 68.05
    _fill(db, "broken", [10.0] * 20, errors=5)
    return db


def test_observe_local(store: LocalStore) -> None:
    now = time.time()
    observed = observe_local(store, ["ask_v2"], now - 60, now + 1)
    assert (observed.requests, observed.errors) == (20, 0)
    assert observed.p95_ms == pytest.approx(118.05)
    assert observe_local(store, ["broken"], now - 60, now + 1).errors == 5
    assert observe_local(store, ["absent"], now - 60, now + 1) == Observation(0, 0, None)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "canary.yaml"
    path.write_text(CONFIG)
    return path


def test_cli_from_arguments(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["evaluate", "--config", str(config), "--percent", "10",
                 "--canary", "500,1,420", "--baseline", "2000,2,400"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (report["verdict"], report["next_percent"]) == ("advance", 50)


def test_cli_from_the_local_store_rolls_back_a_regression(
    config: Path, store: LocalStore, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["evaluate", "--config", str(config), "--percent", "50",
                 "--local-db", store.path, "--canary-function", "ask_v2",
                 "--baseline-function", "ask_v1"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["verdict"] == "rollback"
    assert report["breaches"] == ["p95_ratio"]
    assert report["baseline"]["requests"] == 20


def test_cli_invalid_input(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--config", str(config), "--percent", "10", "--canary", "5"]) == 2
    assert capsys.readouterr().err.strip() == (
        "invalid: --canary must be REQUESTS,ERRORS,P95_MS like 500,1,420.5; got '5'"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("thresholds: {max_p95: 800, max_error_rate: 0.01}\n")
    assert main(["evaluate", "--config", str(bad), "--percent", "10", "--canary", "1,0,1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"invalid: {bad}: thresholds: unknown field 'max_p95'; allowed: max_p95_ms, "
        "max_error_rate, min_requests, max_p95_ratio, max_error_rate_increase"
    )
