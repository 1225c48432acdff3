"""shared.gcp.firestore against Google's emulator: bounded calls, wrapped errors, contention."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shared.gcp import firestore as fs

pytestmark = pytest.mark.firestore


@pytest.fixture(autouse=True)
def _fresh_clients() -> Any:
    fs.reset_clients()
    yield
    fs.reset_clients()


def test_one_client_per_project_and_emulator(firestore_env: str) -> None:
    first = fs.client()
    assert fs.client() is first
    assert fs.client(firestore_env) is not first
    assert fs.client(firestore_env) is fs.client(firestore_env)


def test_transaction_reads_and_writes(firestore_env: str) -> None:
    ref = fs.client().collection("counters").document("a")

    def bump(txn: Any) -> int:
        snapshot = ref.get(transaction=txn, **txn.bounded())
        value = (snapshot.to_dict() or {}).get("n", 0) + 1
        txn.set(ref, {"n": value})
        return int(value)

    assert fs.transaction(bump) == 1
    assert fs.transaction(bump) == 2
    assert ref.get(**fs.bounded(5)).to_dict() == {"n": 2}


def test_callers_exceptions_pass_through_and_nothing_is_written(firestore_env: str) -> None:
    ref = fs.client().collection("counters").document("b")

    class Refused(Exception):
        pass

    def refuse(txn: Any) -> None:
        txn.set(ref, {"n": 1})
        raise Refused

    with pytest.raises(Refused):
        fs.transaction(refuse)
    assert not ref.get(**fs.bounded(5)).exists


def test_a_failed_rollback_does_not_hide_the_error_that_ended_the_transaction(
    firestore_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the server has closed a transaction (a lock wait past the deadline, seen in CI), the
    rollback the library then makes fails too: the caller must still see the first error."""
    from google.api_core import exceptions as api_exceptions

    db = fs.client()
    ref = db.collection("counters").document("c")

    def refuse_rollback(**_: Any) -> None:
        raise api_exceptions.InternalServerError("Can't swap from CLOSED to ACTIVE.")

    class Refused(Exception):
        pass

    def fail(txn: Any) -> None:
        ref.get(transaction=txn, **txn.bounded())
        monkeypatch.setattr(db._firestore_api, "rollback", refuse_rollback)
        raise Refused

    with pytest.raises(Refused):
        fs.transaction(fail)


def test_contention_is_reported_as_contention(firestore_env: str) -> None:
    """Concurrent read-modify-writes on one document with a single attempt: the losers get
    Contention (the library's bare ValueError, wrapped), the winners' writes all count."""
    ref = fs.client().collection("counters").document("hot")
    barrier = threading.Barrier(12)
    outcomes: list[str] = []

    def bump(txn: Any) -> None:
        snapshot = ref.get(transaction=txn, **txn.bounded())
        time.sleep(0.05)  # hold the read so the transactions overlap
        txn.set(ref, {"n": (snapshot.to_dict() or {}).get("n", 0) + 1})

    def worker() -> None:
        barrier.wait()
        try:
            fs.transaction(bump, max_attempts=1, timeout_s=20)
            outcomes.append("ok")
        except fs.Contention:
            outcomes.append("contention")
        except fs.Unavailable as exc:  # pragma: no cover - shown in the assertion
            outcomes.append(f"unavailable {exc}")

    threads = [threading.Thread(target=worker) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(outcomes) <= {"ok", "contention"}, outcomes
    assert "contention" in outcomes
    stored = ref.get(**fs.bounded(5)).to_dict()
    assert (stored or {}).get("n", 0) == outcomes.count("ok")


def test_unreachable_firestore_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on port 1: every kind of call ends within its bound, as Unavailable."""
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-unreachable")
    ref = fs.client().collection("c").document("d")

    started = time.monotonic()
    with pytest.raises(fs.Unavailable) as caught, fs.guarded("read"):
        ref.get(**fs.bounded(1.0))
    assert caught.value.op == "read"
    assert time.monotonic() - started < 5

    started = time.monotonic()
    with pytest.raises(fs.Unavailable):
        fs.transaction(lambda txn: txn.set(ref, {"a": 1}), timeout_s=1.0)
    assert time.monotonic() - started < 5

    started = time.monotonic()
    with pytest.raises(fs.Unavailable), fs.guarded("query"):
        list(fs.client().collection("c").limit(5).stream(**fs.bounded(1.0)))
    assert time.monotonic() - started < 5
