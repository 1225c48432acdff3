"""One circuit per dependency, by name, reused across requests."""

from __future__ import annotations

import threading
from typing import Any

from shared.resilience.circuit.circuit import Circuit
from shared.resilience.errors import ConfigError

__all__ = ["breaker", "breakers", "reset_breakers"]

_registry: dict[str, Circuit] = {}
_lock = threading.Lock()


def breaker(name: str, **options: Any) -> Circuit:
    """The circuit named ``name``, created with ``options`` (as :class:`Circuit`'s) on first use.

    Later calls may repeat the configuration (or give none); a different value for an existing
    name raises :class:`~shared.resilience.errors.ConfigError` naming the differences.
    """
    with _lock:
        existing = _registry.get(name)
        if existing is None:
            created = _registry[name] = Circuit(name=name, **options)
            return created
    if options:
        try:
            wanted = existing.config.replaced(**options)
        except ConfigError as exc:
            raise ConfigError(f"breaker {name!r}: {exc}") from None
        differences = existing.config.differences(wanted)
        if differences:
            raise ConfigError(
                f"breaker {name!r} already exists with another configuration: "
                + "; ".join(differences)
            )
    return existing


def breakers() -> dict[str, Circuit]:
    """Every registered circuit by name (a copy)."""
    with _lock:
        return dict(sorted(_registry.items()))


def reset_breakers() -> None:
    """Forget every registered circuit (for tests)."""
    with _lock:
        _registry.clear()
