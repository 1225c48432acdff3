"""Every playbook is a valid Chaos Toolkit experiment, with a rehearsal for known keys only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ctk.stack import REPO, clean_env

PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yaml"))
CHAOS = str(Path(sys.executable).with_name("chaos"))


def test_the_seed_playbooks_are_there() -> None:
    names = {p.stem for p in PLAYBOOKS}
    assert {"llm-down", "neo4j-slow", "ratelimit-surge", "cold-start"} <= names


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.stem)
def test_chaos_validate_passes(playbook: Path) -> None:
    done = subprocess.run(
        [CHAOS, "--no-version-check", "--no-log-file", "validate", str(playbook)],
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "experiment syntax and semantic look valid" in done.stdout + done.stderr


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.stem)
def test_rehearsal_values_name_configuration_keys(playbook: Path) -> None:
    experiment = yaml.safe_load(playbook.read_text())
    (control,) = [c for c in experiment["controls"] if c["provider"]["module"].endswith("controls")]
    rehearsal = control["provider"]["arguments"]["rehearsal"]
    assert rehearsal, "every playbook has a short rehearsal setting"
    assert set(rehearsal) <= set(experiment["configuration"])


def test_chaos_validate_names_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1.0.0\ntitle: t\ndescription: d\nmethod:\n  - type: probe\n    name: p\n"
        "    provider:\n      type: python\n      module: shared.chaos.ctk.load\n"
        "      func: run_load\n      arguments: {url: x}\n"
    )
    done = subprocess.run(
        [CHAOS, "--no-version-check", "--no-log-file", "validate", str(bad)],
        env=clean_env(),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert (
        "required argument 'rate_rpm' is missing from activity 'run_load'"
        in done.stdout + done.stderr
    )
