"""Fixtures of the SLO monitor tests: fake Monitoring peer, Slack server, local store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import reset_settings
from shared.slo import service
from shared.slo.local_store import LocalStore
from tests.slo.fake_monitoring import FakeMetricService
from tests.slo.slack_server import SlackServer, running_slack

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fake_monitoring() -> Iterator[FakeMetricService]:
    fake = FakeMetricService().start()
    yield fake
    fake.stop()


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with running_slack() as server:
        yield server


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[LocalStore]:
    store = LocalStore(tmp_path / "metrics.db")
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _fresh_monitor() -> Iterator[None]:
    """Every test builds its own instance Monitor, from settings read again."""
    service.reset()
    reset_settings()
    yield
    service.reset()
    reset_settings()
