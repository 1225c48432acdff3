"""``python -m shared.canary``: start, show and roll back by hand, on the emulator."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from shared.canary import RolloutStore
from shared.canary.cli import main

pytestmark = pytest.mark.firestore


def test_start_show_rollback(firestore_client: Any, capsys: pytest.CaptureFixture[str]) -> None:
    store = RolloutStore(lambda: firestore_client)
    out = io.StringIO()
    code = main(["start", "ask-model", "--service", "graphAsk", "--stable", "primary-llm",
                 "--candidate", "candidate-llm", "--slos", "graphAsk-latency,graphAsk-errors",
                 "--stages", "5,50,100"], out=out, store=store)  # fmt: skip
    assert code == 0
    started = json.loads(out.getvalue())
    assert (started["percent"], started["status"], started["slos"]) == (
        5, "running", ["graphAsk-latency", "graphAsk-errors"],
    )  # fmt: skip
    out = io.StringIO()
    assert main(["rollback", "ask-model", "--reason", "bad answers"], out=out, store=store) == 0
    rolled = json.loads(out.getvalue())
    assert (rolled["status"], rolled["halted_by"], rolled["halt_reason"]) == (
        "halted", "operator", "bad answers",
    )  # fmt: skip
    out = io.StringIO()
    assert main(["show", "ask-model"], out=out, store=store) == 0
    shown = json.loads(out.getvalue())
    assert [t["verdict"] for t in shown["transitions"]] == ["start", "rollback"]
    assert main(["show", "absent"], store=store) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["start", "Bad Name", "--service", "s", "--stable", "a", "--candidate", "b"],
                store=store) == 2  # fmt: skip
    assert "rollout name must be" in capsys.readouterr().err
