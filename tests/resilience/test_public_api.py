"""The package's public surface: every exported name resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import shared.resilience as resilience


def test_every_exported_name_resolves_to_its_module_object() -> None:
    for name in resilience.__all__:
        value = getattr(resilience, name)
        module = resilience._EXPORTS[name]
        assert value is getattr(__import__(f"shared.resilience.{module}", fromlist=[name]), name)


def test_all_lists_exactly_the_exports() -> None:
    assert sorted(resilience.__all__) == sorted(resilience._EXPORTS)


def test_importing_one_piece_does_not_import_the_heavy_ones() -> None:
    code = (
        "import sys, shared.resilience.cache, shared.resilience.retries;"
        "print(','.join(m for m in ('pybreaker', 'redis', 'requests') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
