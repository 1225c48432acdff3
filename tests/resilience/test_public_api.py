"""The package's front door: the dozen names of the README's example, each resolvable, lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import shared.resilience as resilience

FRONT_DOOR = {
    "Circuit": "circuit",
    "breaker": "circuit",
    "with_breaker": "compose",
    "with_breaker_and_retry": "compose",
    "retry": "retries",
    "retrying": "retries",
    "ask_with_fallback": "fallback",
    "cached": "cache",
    "throttle": "limiter",
    "RateLimiter": "limiter",
    "PriorityAdmission": "admission",
    "METRICS": "events",
}
"""Each exported name and the module that defines it."""

HEAVY = ("pybreaker", "redis", "requests", "tenacity")


def _modules_loaded_by(code: str) -> list[str]:
    """The heavy libraries and ``shared.resilience`` submodules in ``sys.modules`` after ``code``,
    run in a fresh interpreter (this one has imported everything already)."""
    probe = (
        f"{code}\nimport sys\n"
        f"print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}"
        " or m.startswith('shared.resilience.'))))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_all_is_exactly_the_readme_example_names() -> None:
    assert sorted(resilience.__all__) == sorted(FRONT_DOOR)


@pytest.mark.parametrize("name", sorted(FRONT_DOOR))
def test_every_exported_name_is_its_module_object(name: str) -> None:
    module = importlib.import_module(f"shared.resilience.{FRONT_DOOR[name]}")
    assert getattr(resilience, name) is getattr(module, name)


def test_other_names_are_not_at_the_front_door() -> None:
    # They stay importable from their module; the package itself does not offer them.
    assert importlib.import_module("shared.resilience.circuit").CircuitConfig
    with pytest.raises(AttributeError, match="has no attribute 'CircuitConfig'"):
        _ = resilience.CircuitConfig  # type: ignore[attr-defined]


def test_star_import_gives_the_front_door_only() -> None:
    namespace: dict[str, object] = {}
    exec("from shared.resilience import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(FRONT_DOOR)


def test_importing_the_package_imports_none_of_its_modules() -> None:
    assert _modules_loaded_by("import shared.resilience") == []


def test_one_name_loads_only_its_module_and_what_that_needs() -> None:
    loaded = _modules_loaded_by("from shared.resilience import cached")
    assert "shared.resilience.cache" in loaded
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY)
    assert "shared.resilience.circuit" not in loaded


def test_importing_one_piece_does_not_import_the_heavy_ones() -> None:
    loaded = _modules_loaded_by("import shared.resilience.cache, shared.resilience.retries")
    assert not {m.split(".")[0] for m in loaded} & {"pybreaker", "redis", "requests"}
