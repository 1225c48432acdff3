"""Every obs test starts and ends with shared.obs's state reset (settings, sinks, logging)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.obs import testing


@pytest.fixture(autouse=True)
def _reset_obs() -> Iterator[None]:
    testing.reset()
    yield
    testing.reset()
