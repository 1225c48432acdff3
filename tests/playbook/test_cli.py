"""The CLI: exit codes 0/1/2, journal file, dry run, SIGINT running rollbacks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.playbook.cli import main

REPO = Path(__file__).resolve().parents[2]

PASSING = """
title: cli
configuration:
  expected: 3
hypothesis:
  probes:
    - type: probe
      name: three
      provider: {type: python, func: tests.playbook.steps.value, arguments: {of: 3}}
      tolerance: ${expected}
method:
  - type: probe
    name: measure
    provider: {type: python, func: tests.playbook.steps.value, arguments: {of: 0.5}}
success_criteria:
  - probe: measure
    tolerance: [0, 1]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _run(*args: str) -> int:
    return main([*args, "--allow-module", "tests.playbook."])


def test_exit_0_when_met_and_journal_written(tmp_path: Path) -> None:
    journal = tmp_path / "journal.json"
    assert _run("run", str(_write(tmp_path, PASSING)), "--journal", str(journal)) == 0
    document = json.loads(journal.read_text())
    assert document["status"] == "completed"
    assert document["criteria"][0]["actual"] == 0.5


def test_exit_1_when_deviated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("run", str(_write(tmp_path, PASSING)), "--var", "expected=4") == 1
    out = capsys.readouterr().out
    assert "cli: failed" in out
    assert "(DEVIATED: 3 != 4)" in out


def test_exit_2_on_invalid_playbook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, PASSING.replace("type: python", "type: shell", 1))
    assert _run("run", str(path)) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        f"invalid: {path}: hypothesis.probes[0].provider.type: must be one of http, load, "
        "python, sleep; got 'shell'"
    )


def test_exit_2_on_bad_var_and_bad_usage(tmp_path: Path) -> None:
    assert _run("run", str(_write(tmp_path, PASSING)), "--var", "novalue") == 2
    with pytest.raises(SystemExit) as caught:
        main(["launch", "x.yaml"])
    assert caught.value.code == 2


def test_dry_run_prints_the_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("run", str(_write(tmp_path, PASSING)), "--dry-run") == 0
    out = capsys.readouterr().out
    assert "[method] probe measure: planned — python tests.playbook.steps.value(of=0.5)" in out
    assert "cli: planned" in out


@pytest.mark.slow
def test_sigint_stops_the_method_and_runs_rollbacks(tmp_path: Path) -> None:
    text = """
title: interrupted
method:
  - type: action
    name: long-outage
    provider: {type: sleep, seconds: 60}
rollbacks:
  - type: action
    name: restore
    provider: {type: sleep, seconds: 0.2}
"""
    journal = tmp_path / "journal.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.playbook", "run", str(_write(tmp_path, text)),
         "--journal", str(journal)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, out
    document = json.loads(journal.read_text())
    assert document["status"] == "interrupted"
    assert [s["name"] for s in document["steps"]] == ["long-outage", "restore"]
    assert document["steps"][1]["status"] == "succeeded"
    assert document["duration_s"] < 15


def test_validate_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, PASSING)
    assert main(["validate", str(path), "--allow-module", "tests.playbook."]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: valid"
    assert main(["validate", str(path)]) == 2  # tests.playbook. is not allowed by default
