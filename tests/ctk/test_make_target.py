"""``make playbook``: chaos run's journal paths, the dry run beside the real journal, exit 2."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.ctk.stack import REPO, clean_env


def _recipe(*assignments: str) -> str:
    """The commands ``make playbook`` would run (``make -n``: nothing runs), set-up left out."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", "playbook", *assignments],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = done.stdout.replace("\\\n", " ")
    lines = [line for line in text.splitlines() if "bin/chaos" in line]
    return "\n".join(lines)


def test_a_real_run_writes_the_journal_of_the_playbook() -> None:
    recipe = _recipe("PLAYBOOK=neo4j-slow")
    assert "--journal-path .local/journal-neo4j-slow.json" in recipe
    assert "--dry" not in recipe
    assert "PLAYBOOK_REHEARSAL" not in recipe


def test_a_dry_run_never_overwrites_the_last_real_journal() -> None:
    recipe = _recipe("PLAYBOOK=neo4j-slow", "DRY_RUN=1", "REHEARSAL=1", "VARS=load_s:float=5")
    assert "--dry activities" in recipe
    assert "--journal-path .local/journal-neo4j-slow.dry.json" in recipe
    assert "--journal-path .local/journal-neo4j-slow.json" not in recipe
    assert "PLAYBOOK_REHEARSAL=1" in recipe
    assert "--var load_s:float=5" in recipe


def test_an_invalid_playbook_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1.0.0\ntitle: no method\ndescription: d\n")
    relative = os.path.relpath(bad.with_suffix(""), REPO / "playbooks")
    recipe = _recipe(f"PLAYBOOK={relative}")
    validate = recipe.splitlines()[0].replace(".local/chaostoolkit.log", str(tmp_path / "c.log"))
    done = subprocess.run(
        ["bash", "-c", validate], cwd=REPO, env=clean_env(), capture_output=True, timeout=60
    )
    assert done.returncode == 2
