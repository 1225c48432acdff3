"""The package's front door: the dozen names of the README's example, each resolvable, lazily."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import shared.resilience as resilience

README = Path(__file__).resolve().parents[2] / "README.md"


def _readme_example_names() -> list[str]:
    """The names the README's resilience example imports from ``shared.resilience``."""
    section = README.read_text().split("## The resilience package", 1)[1]
    example = section.split("```python", 1)[1].split("```", 1)[0]
    imports = [
        node
        for node in ast.walk(ast.parse(example))
        if isinstance(node, ast.ImportFrom) and node.module == "shared.resilience"
    ]
    return [alias.name for node in imports for alias in node.names]


FRONT_DOOR = _readme_example_names()

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
    assert len(FRONT_DOOR) == 12
    assert sorted(resilience.__all__) == sorted(FRONT_DOOR)


@pytest.mark.parametrize("name", FRONT_DOOR)
def test_every_exported_name_is_the_object_of_its_defining_module(name: str) -> None:
    value = getattr(resilience, name)
    # An instance (METRICS) answers __module__ from its class, defined in the same module.
    defining = importlib.import_module(value.__module__)
    assert defining.__name__.startswith("shared.resilience.")
    assert getattr(defining, name) is value


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
