"""Fixtures of the chaos tests: a clean chaos environment, test clients, real local peers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import functions_framework
import pytest
from flask.testing import FlaskClient

from shared.chaos.experiments import MemoryExperimentStore
from shared.chaos.runtime import Runtime, use_runtime
from shared.obs import use_request_sinks
from shared.resilience.clock import FakeClock
from shared.settings import reset_settings
from tests import services
from tests.chaos import servers


@pytest.fixture(autouse=True)
def chaos_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The local-stack configuration: chaos on, no auth, nothing else set."""
    import os

    for name in list(os.environ):
        if name.startswith("CHAOS_"):
            monkeypatch.delenv(name)
    for name in ("K_SERVICE", "LOCAL_METRICS_DB", "FIREBASE_AUTH_EMULATOR_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHAOS_ENABLED", "true")
    monkeypatch.setenv("CHAOS_AUTH", "none")
    return monkeypatch


@pytest.fixture(autouse=True)
def _fresh_settings(chaos_env: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings are read once per instance: each test reads its own environment (a test that
    changes a variable midway calls ``reset_settings()`` itself, as a redeploy would)."""
    reset_settings()
    yield
    reset_settings()


@pytest.fixture(autouse=True)
def _no_request_sinks() -> Iterator[None]:
    with use_request_sinks():
        yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_800_000_000.0)


@pytest.fixture
def store() -> MemoryExperimentStore:
    return MemoryExperimentStore()


@pytest.fixture
def fake_runtime(clock: FakeClock, store: MemoryExperimentStore) -> Iterator[Runtime]:
    """Handlers on a fake clock (sleeps are instant) and an in-memory experiments store."""
    with use_runtime(clock=clock, store=store) as rt:
        yield rt


def _client(name: str) -> FlaskClient:
    app = functions_framework.create_app(target=name, source=f"functions/{name}/main.py")
    return app.test_client()


@pytest.fixture
def delay_client() -> FlaskClient:
    return _client("chaos_delay")


@pytest.fixture
def proxy_client() -> FlaskClient:
    return _client("chaos_proxy")


@pytest.fixture(scope="session")
def echo_upstream() -> Iterator[servers.EchoUpstream]:
    upstream = servers.start_echo_upstream()
    yield upstream
    upstream.stop()


@pytest.fixture
def function_server() -> Iterator[Callable[..., services.Service]]:
    """Start ``functions/<name>/main.py`` under functions-framework; stopped after the test."""
    started: list[services.Service] = []

    def start(name: str, env: dict[str, str], **kwargs: Any) -> services.Service:
        service = servers.start_function(name, env, **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture(scope="session")
def auth_emulator() -> Iterator[servers.AuthEmulator]:
    with servers.running_auth_emulator() as emulator:
        yield emulator
