"""Fixtures shared by the whole suite: real local services and reset of global state."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests import otel, services

FIRESTORE_PROJECT = "demo-resilience-test"


@pytest.fixture(scope="session", autouse=True)
def _telemetry() -> Iterator[None]:
    """OpenTelemetry's providers, installed once for the session with in-memory capture."""
    from shared.obs import telemetry

    telemetry.start("tests", span_exporter=otel.SPANS, metric_reader=otel.METRICS, wait=True)
    yield
    telemetry.shutdown()


@pytest.fixture
def spans() -> Iterator[Any]:
    """The session's span capture, emptied before the test."""
    otel.SPANS.clear()
    yield otel
    otel.SPANS.clear()


def _reset_globals() -> None:
    """One reset per package: settings memos, Firestore clients, resilience state."""
    from shared.gcp import firestore
    from shared.resilience import testing
    from shared.settings import reset_settings

    reset_settings()
    firestore.reset_clients()
    testing.reset()


@pytest.fixture(autouse=True)
def _fresh_globals() -> Iterator[None]:
    """Each test starts from fresh settings, counters, hooks, breakers and caches."""
    _reset_globals()
    yield
    _reset_globals()


@pytest.fixture(scope="session")
def redis_service() -> Iterator[services.Service]:
    with services.running(services.start_redis()) as svc:
        yield svc


@pytest.fixture
def redis_client(redis_service: services.Service) -> Iterator[Any]:
    """A client on the session's redis-server, flushed before and after the test."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_service.port)
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture(scope="session")
def firestore_service() -> Iterator[services.Service]:
    with services.running(services.start_firestore()) as svc:
        yield svc


@pytest.fixture
def firestore_env(
    firestore_service: services.Service, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Point google-cloud-firestore at the emulator with an empty database; yields the project."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", firestore_service.host)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", FIRESTORE_PROJECT)
    services.reset_firestore(firestore_service.host, FIRESTORE_PROJECT)
    yield FIRESTORE_PROJECT
    services.reset_firestore(firestore_service.host, FIRESTORE_PROJECT)


@pytest.fixture
def firestore_client(firestore_env: str) -> Any:
    from google.cloud import firestore

    return firestore.Client(project=firestore_env)


@pytest.fixture
def unique() -> str:
    """A short unique string for names that must not collide between tests."""
    return uuid.uuid4().hex[:10]


def pytest_report_header() -> str:
    return f"FIRESTORE_EMULATOR_JAR={os.environ.get('FIRESTORE_EMULATOR_JAR', '(auto)')}"
