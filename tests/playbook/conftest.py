"""Fixtures of the playbook tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.playbook import Playbook, load_playbook
from tests.playbook import steps

FIXTURES = Path(__file__).parent / "fixtures"
ALLOWED = ("shared.", "tests.playbook.")


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    steps.CALLS.clear()
    yield
    steps.CALLS.clear()


@pytest.fixture
def write_playbook(tmp_path: Path) -> Callable[..., Playbook]:
    """Write YAML text to a file and load it (test steps allowed, empty environment)."""

    def write(text: str, **kwargs: Any) -> Playbook:
        path = tmp_path / "playbook.yaml"
        path.write_text(text, encoding="utf-8")
        kwargs.setdefault("environ", {})
        return load_playbook(path, allowed_modules=ALLOWED, **kwargs)

    return write
