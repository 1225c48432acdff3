"""rollout/<name>, its transitions and heartbeats in the Firestore emulator."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shared.canary import (
    Decision,
    RolloutConflict,
    RolloutNotFound,
    RolloutStore,
    StoreUnavailable,
)
from shared.canary.store import MAX_ALERT_ATTEMPTS
from shared.gcp import firestore as fs

pytestmark = pytest.mark.firestore

NOW = 1_800_000_000.0


@pytest.fixture
def store(firestore_client: Any) -> RolloutStore:
    return RolloutStore(lambda: firestore_client, timeout_s=5)


def _start(store: RolloutStore, candidate: str = "v2", now: float = NOW) -> Any:
    return store.start("ask-model", service="graphAsk", stable="v1", candidate=candidate,
                       now=now, slos=["ask-latency"], breakers=["llm:v2"])  # fmt: skip


def test_start_writes_the_document_and_a_transition(
    store: RolloutStore, firestore_client: Any
) -> None:
    rollout = _start(store)
    raw = firestore_client.collection("rollout").document("ask-model").get().to_dict()
    assert {k: raw[k] for k in ("stable", "candidate", "percent", "status", "halted", "slos",
                                "breakers", "stages", "generation")} == {
        "stable": "v1", "candidate": "v2", "percent": 10, "status": "running", "halted": False,
        "slos": ["ask-latency"], "breakers": ["llm:v2"], "stages": [10, 50, 100], "generation": 1,
    }  # fmt: skip
    assert raw["history"] == [{"percent": 10, "started_at": NOW, "ended_at": None, "outcome": ""}]
    assert "updated_at" in raw
    assert store.get("ask-model") == rollout
    assert _start(store) == rollout  # a retried start changes nothing
    with pytest.raises(RolloutConflict, match="is running 'v2' at 10%"):
        _start(store, candidate="v3")
    (start,) = store.transitions("ask-model")
    assert (start["verdict"], start["by"], start["to_percent"], start["alert"]) == (
        "start", "operator", 10, "none",
    )  # fmt: skip


def test_decisions_are_applied_with_their_transition(store: RolloutStore) -> None:
    rollout = _start(store)
    evidence = {"latency": {"outcome": "pass", "p_value": 0.4}}
    advanced = store.apply(rollout, Decision("advance", 10, 50, "gate", ("ok",), evidence),
                           NOW + 300)  # fmt: skip
    assert (advanced.percent, advanced.generation) == (50, 2)
    held = store.apply(advanced, Decision("hold", 50, 50, "gate", ("too few",)), NOW + 600)
    assert held == advanced  # a hold is recorded, the document is unchanged
    back = store.apply(held, Decision("rollback", 50, 0, "slo:ask-latency", ("burn",)), NOW + 900)
    assert (back.status, back.percent, back.halted_by) == ("halted", 0, "slo:ask-latency")
    assert store.get("ask-model") == back
    transitions = store.transitions("ask-model")
    assert [(t["verdict"], t["by"], t["percent_after"], t["alert"]) for t in transitions] == [
        ("start", "operator", 10, "none"),
        ("advance", "gate", 50, "pending"),
        ("hold", "gate", 50, "none"),
        ("rollback", "slo:ask-latency", 0, "pending"),
    ]
    assert transitions[1]["evidence"] == evidence
    assert store.active() == [back]
    # A new rollout may start over a halted one.
    again = _start(store, candidate="v3", now=NOW + 1000)
    assert (again.candidate, again.status) == ("v3", "running")
    assert again.generation == back.generation + 1


def test_a_decision_on_a_stale_state_is_refused(store: RolloutStore) -> None:
    rollout = _start(store)
    store.apply(rollout, Decision("advance", 10, 50, "gate", ("ok",)), NOW + 300)
    with pytest.raises(RolloutConflict, match=r"changed \(generation 1 -> 2\)"):
        store.apply(rollout, Decision("rollback", 10, 0, "gate", ("late",)), NOW + 301)
    assert store.get("ask-model").percent == 50
    assert [t["verdict"] for t in store.transitions("ask-model")] == ["start", "advance"]


def test_concurrent_runs_apply_one_decision(firestore_client: Any) -> None:
    # The emulator settles each conflicting commit with a ~2 s lock wait (Firestore aborts the
    # younger transaction at once): on a loaded machine a loser can pass a 5 s bound.
    store = RolloutStore(lambda: firestore_client, timeout_s=30)
    rollout = _start(store)
    outcomes: list[str] = []

    def run(i: int) -> None:
        try:
            store.apply(rollout, Decision("advance", 10, 50, "gate", (f"run {i}",)), NOW + i)
            outcomes.append("applied")
        except RolloutConflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["applied", "conflict", "conflict", "conflict"]
    assert store.get("ask-model").generation == 2


def test_alert_outbox(store: RolloutStore) -> None:
    rollout = _start(store)
    store.apply(rollout, Decision("rollback", 10, 0, "gate", ("slow",)), NOW + 1)
    (pending,) = store.pending_alerts("ask-model")
    assert pending["verdict"] == "rollback"
    for _ in range(MAX_ALERT_ATTEMPTS - 1):
        store.mark_alert("ask-model", pending, "HTTP 500")
        (pending,) = store.pending_alerts("ask-model")
    assert (pending["alert"], pending["alert_error"]) == ("failed", "HTTP 500")
    store.mark_alert("ask-model", pending, "HTTP 500")
    assert store.pending_alerts("ask-model") == []  # attempts spent: left as failed


def test_heartbeats_since(store: RolloutStore) -> None:
    _start(store)
    breakers = {"llm:v2": {"state": "open", "open_since": NOW - 30}}
    store.beat("ask-model", "a", breakers, NOW, timeout_s=5)
    store.beat("ask-model", "b", {"graph": {"state": "closed", "open_since": None}}, NOW - 600, 5)
    beats = store.heartbeats("ask-model", NOW - 60)
    assert beats == [{"at": NOW, "breakers": breakers}]


def test_missing_rollout(store: RolloutStore, firestore_env: str) -> None:
    with pytest.raises(RolloutNotFound, match="does not exist: start it first"):
        store.get("absent")
    assert store.read("absent", 2.0) is None
    assert store.active() == []


def test_an_unreachable_store_gives_up_within_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-unreachable")
    fs.reset_clients()
    store = RolloutStore(timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="rollout store failed"):
        store.read("ask-model", 1.0)
    assert time.monotonic() - started < 5.0
