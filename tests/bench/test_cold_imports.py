"""Cold start: the deployed entry modules import nothing heavy (P3, bench_chaos step 4).

OpenTelemetry's SDK and exporters, the Google clients, ``requests`` and YAML cost tens to hundreds
of milliseconds to import; each starts on a function's first use instead. Each entry module is
imported in a fresh interpreter under ``python -X importtime``, whose report also names the
module that pulled a heavy one in, so a failure says where to look.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENTRY_MODULES = sorted(REPO.glob("functions/*/main.py"))
HEAVY = (
    "opentelemetry",
    "grpc",
    "google.cloud.firestore",
    "google.cloud.monitoring_v3",
    "google.api_core",
    "firebase_admin",
    "requests",
    "yaml",
)


def heavy_imports(source: Path) -> list[str]:
    """``"heavy.module (via importer)"`` for each heavy module importing ``source`` loads."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import runpy, sys; runpy.run_path(sys.argv[1])",
         str(source)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # Lines read "import time: self | cumulative | <indent>name"; a module is printed once its
    # own imports are done, so the next line printed with less indentation is its importer.
    rows: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1]
            rows.append((len(name) - len(name.lstrip()), name.strip()))
    found = []
    for i, (depth, name) in enumerate(rows):
        if any(name == h or name.startswith(h + ".") for h in HEAVY):
            importer = next((n for d, n in rows[i + 1 :] if d < depth), "the entry module")
            if not any(importer == h or importer.startswith(h + ".") for h in HEAVY):
                found.append(f"{name} (via {importer})")
    return found


@pytest.mark.parametrize("source", ENTRY_MODULES, ids=lambda p: p.parent.name)
def test_entry_module_imports_nothing_heavy(source: Path) -> None:
    assert heavy_imports(source) == []


def test_the_guard_sees_an_eager_import(tmp_path: Path) -> None:
    entry = tmp_path / "main.py"
    entry.write_text("import shared.obs\nimport opentelemetry.trace\n")
    assert heavy_imports(entry) == ["opentelemetry.trace (via the entry module)"]


def test_there_are_entry_modules() -> None:
    assert {p.parent.name for p in ENTRY_MODULES} >= {"chaos_delay", "chaos_proxy", "slo_monitor"}
