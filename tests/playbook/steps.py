"""Pure python probes and actions for the runner tests (allowed via ``tests.playbook.``)."""

from __future__ import annotations

import threading
from typing import Any

CALLS: list[tuple[str, dict[str, Any]]] = []
_lock = threading.Lock()


def _note(name: str, **kwargs: Any) -> None:
    with _lock:
        CALLS.append((name, kwargs))


def value(*, of: Any) -> Any:
    """A probe returning ``of``."""
    _note("value", of=of)
    return of


def metrics(*, answer_rate: float, hit_rate: float | None = None) -> dict[str, Any]:
    """A probe shaped like the fallback probe's output."""
    _note("metrics", answer_rate=answer_rate)
    return {"fallback": {"answer_rate": answer_rate, "fallback_hit_rate": hit_rate}}


def act(*, label: str) -> dict[str, str]:
    """An action that only records it ran."""
    _note("act", label=label)
    return {"done": label}


def boom(*, message: str) -> None:
    """An action that fails."""
    _note("boom", message=message)
    raise RuntimeError(message)


def interrupt() -> None:
    """An action interrupted as by Ctrl-C."""
    _note("interrupt")
    raise KeyboardInterrupt


def names() -> list[str]:
    with _lock:
        return [name for name, _ in CALLS]
