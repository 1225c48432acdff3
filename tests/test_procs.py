"""shared.procs without a log folder: the child writes to our output, errors say so plainly."""

from __future__ import annotations

import sys

import pytest

from shared import procs


def test_a_child_without_a_log_writes_to_our_output(capfd: pytest.CaptureFixture[str]) -> None:
    child = procs.spawn("talker", [sys.executable, "-c", "print('hello')"], port=None, log_dir=None)
    assert child.proc.wait(10) == 0
    assert child.log is None
    assert child.tail() == ""
    assert "hello" in capfd.readouterr().out


def test_a_child_without_a_log_that_never_listens_is_explained_without_a_log_part() -> None:
    port = procs.free_port()
    argv = [sys.executable, "-c", "raise SystemExit(4)"]
    with pytest.raises(procs.ProcessError) as failed:
        procs.launch("quitter", argv, port=port, log_dir=None, timeout=10, poll_s=0.01)
    assert str(failed.value) == f"quitter exited with 4 before listening on 127.0.0.1:{port}"


def test_stop_terminates_the_child_and_returns_its_exit_code() -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = procs.spawn("sleeper", argv, port=None, log_dir=None)
    assert child.alive()
    assert child.stop(grace=5.0) == -15  # SIGTERM
    assert not child.alive()
