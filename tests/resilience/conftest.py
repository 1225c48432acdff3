"""Fixtures every resilience test module uses: a fake clock, and a recorder of the events."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.resilience import events
from shared.resilience.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def recorder() -> Iterator[events.Recorder]:
    """Records every event of the test, with METRICS still counting (this context's hooks only)."""
    rec = events.Recorder()
    with events.use_hooks(rec, events.METRICS):
        yield rec
