"""One suite, every store: the in-memory store and Firestore (emulator) behave the same."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from shared.chaos.errors import ExperimentConflict, ExperimentNotFound, StoreUnavailable
from shared.chaos.experiments import (
    ActiveExperiments,
    Experiment,
    ExperimentStore,
    ExperimentStoreFailed,
    MemoryExperimentStore,
)
from shared.chaos.firestore_store import FirestoreExperimentStore
from shared.chaos.params import ExperimentSpec
from shared.resilience import events
from shared.resilience.clock import FakeClock

NOW = 1_800_000_000.0
ERROR_15_MIN = ExperimentSpec("llm", "error", 900)


@pytest.fixture(params=["memory", pytest.param("firestore", marks=pytest.mark.firestore)])
def any_store(request: pytest.FixtureRequest) -> Iterator[ExperimentStore]:
    if request.param == "memory":
        yield MemoryExperimentStore()
    else:
        request.getfixturevalue("firestore_env")
        yield FirestoreExperimentStore()


def test_start_then_active_until_expiry(any_store: ExperimentStore) -> None:
    started = any_store.start(ERROR_15_MIN, now=NOW, created_by="u1 (owner)")
    assert (started.upstream, started.mode, started.duration_s) == ("llm", "error", 900)
    assert started.expires_at == NOW + 900
    assert any_store.active_for("llm", now=NOW + 899.9) == started
    assert any_store.active_for("llm", now=NOW + 900) is None
    assert any_store.active_for("db", now=NOW) is None
    assert any_store.get(started.id) == started


def test_one_active_experiment_per_upstream(any_store: ExperimentStore) -> None:
    first = any_store.start(ERROR_15_MIN, now=NOW)
    with pytest.raises(ExperimentConflict) as info:
        any_store.start(ExperimentSpec("llm", "slow", 60, 1500), now=NOW + 1)
    assert info.value.active_id == first.id
    other = any_store.start(ExperimentSpec("db", "drop", 60), now=NOW + 1)
    assert any_store.active_for("db", now=NOW + 2) == other
    # Once expired, a new one may start.
    again = any_store.start(ExperimentSpec("llm", "slow", 60, 1500), now=NOW + 900)
    assert any_store.active_for("llm", now=NOW + 901) == again


def test_stop_early_is_idempotent(any_store: ExperimentStore) -> None:
    started = any_store.start(ERROR_15_MIN, now=NOW)
    stopped = any_store.stop(started.id, now=NOW + 10)
    assert stopped.stopped_at == NOW + 10
    assert stopped.status(NOW + 10) == "stopped"
    assert any_store.active_for("llm", now=NOW + 11) is None
    assert any_store.stop(started.id, now=NOW + 20) == stopped
    assert any_store.get(started.id) == stopped
    # Stopping frees the upstream at once.
    any_store.start(ERROR_15_MIN, now=NOW + 30)


def test_stop_matching_ends_the_active_ones_that_match(any_store: ExperimentStore) -> None:
    named = any_store.start(ExperimentSpec("llm", "error", 60, name="drill"), now=NOW)
    other = any_store.start(ExperimentSpec("db", "drop", 60, name="drill"), now=NOW)
    expired = any_store.start(ExperimentSpec("cache", "error", 5, name="drill"), now=NOW)
    assert any_store.stop_matching(upstream="llm", name="other", now=NOW + 1) == ()
    assert any_store.stop_matching(upstream=None, name="nope", now=NOW + 1) == ()
    [stopped] = any_store.stop_matching(upstream="llm", name=None, now=NOW + 1)
    assert (stopped.id, stopped.stopped_at, stopped.name) == (named.id, NOW + 1, "drill")
    assert any_store.active_for("llm", now=NOW + 2) is None
    # The expired one is not "stopped" again; the other active one is.
    [also] = any_store.stop_matching(upstream=None, name="drill", now=NOW + 10)
    assert also.id == other.id
    assert any_store.get(expired.id).status(NOW + 10) == "expired"
    assert any_store.stop_matching(upstream=None, name=None, now=NOW + 11) == ()


def test_stopping_an_expired_experiment_keeps_it_expired(any_store: ExperimentStore) -> None:
    started = any_store.start(ExperimentSpec("llm", "error", 5), now=NOW)
    stopped = any_store.stop(started.id, now=NOW + 6)
    assert stopped.stopped_at is None
    assert stopped.status(NOW + 6) == "expired"


def test_list_newest_first_with_limit(any_store: ExperimentStore) -> None:
    ids = [
        any_store.start(ExperimentSpec(name, "error", 60), now=NOW + i).id
        for i, name in enumerate(["a", "b", "c"])
    ]
    assert [e.id for e in any_store.list(limit=10)] == ids[::-1]
    assert [e.id for e in any_store.list(limit=2)] == ids[:0:-1]


def test_unknown_ids(any_store: ExperimentStore) -> None:
    for bad in ["0" * 32, "nope", "../x", "a/b"]:
        with pytest.raises(ExperimentNotFound):
            any_store.get(bad)
        with pytest.raises(ExperimentNotFound):
            any_store.stop(bad, now=NOW)


def test_json_form() -> None:
    e = Experiment("abc", "llm", "slow", 60, 1500, NOW, NOW + 60)
    assert e.to_json(NOW + 15) == {
        "id": "abc",
        "upstream": "llm",
        "mode": "slow",
        "duration_s": 60,
        "slow_ms": 1500,
        "started_at": "2027-01-15T08:00:00.000Z",
        "expires_at": "2027-01-15T08:01:00.000Z",
        "stopped_at": None,
        "status": "active",
        "remaining_s": 45.0,
        "created_by": "",
        "name": None,
    }
    assert Experiment.from_document(e.to_document()) == e
    with pytest.raises(StoreUnavailable, match="corrupt experiment document"):
        Experiment.from_document({"id": "x", "mode": "explode"})


class CountingStore(MemoryExperimentStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.fail = False

    def active_for(self, upstream: str, *, now: float) -> Experiment | None:
        self.reads += 1
        if self.fail:
            raise StoreUnavailable("experiments store failed: ServiceUnavailable: down")
        return super().active_for(upstream, now=now)


def test_active_cache_reads_once_per_ttl_and_expires_exactly() -> None:
    clock = FakeClock(NOW)
    store = CountingStore()
    active = ActiveExperiments(store, clock=clock, ttl_s=2.0)
    assert active.lookup("llm") is None
    started = store.start(ExperimentSpec("llm", "error", 3), now=clock.time())
    # Started elsewhere: seen after the TTL at the latest.
    assert active.lookup("llm") is None
    clock.advance(2.0)
    assert active.lookup("llm") == started
    assert active.lookup("llm") == started
    assert store.reads == 2
    clock.advance(1.0)  # expired while cached: never served past its expiry
    assert active.lookup("llm") is None
    # Invalidated here: seen at once.
    store.start(ExperimentSpec("llm", "drop", 60), now=clock.time())
    active.invalidate("llm")
    looked_up = active.lookup("llm")
    assert looked_up is not None
    assert looked_up.mode == "drop"
    # ttl 0: every lookup reads.
    before = store.reads
    active.lookup("llm", ttl_s=0)
    active.lookup("llm", ttl_s=0)
    assert store.reads == before + 2


def test_active_cache_fails_open_and_reports(any_store: ExperimentStore) -> None:
    clock = FakeClock(NOW)
    store = CountingStore()
    store.start(ERROR_15_MIN, now=NOW)
    store.fail = True
    recorder = events.Recorder()
    with events.use_hooks(recorder):
        active = ActiveExperiments(store, clock=clock, ttl_s=2.0)
        assert active.lookup("llm") is None
        assert active.lookup("llm") is None  # the failure is cached too: one read per TTL
    assert store.reads == 1
    [failure] = recorder.of(ExperimentStoreFailed)
    assert failure.name == "llm"
    assert "ServiceUnavailable" in failure.error


@pytest.mark.firestore
def test_firestore_down_is_store_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import services

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{services.free_port()}")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-down")
    store = FirestoreExperimentStore(timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="experiments store failed"):
        store.active_for("llm", now=NOW)
    assert time.monotonic() - started < 1.5  # the forwarding path makes one attempt
    for call in (
        lambda: store.get("0" * 32),
        lambda: store.start(ERROR_15_MIN, now=NOW),
        lambda: store.stop_matching(upstream=None, name=None, now=NOW),
    ):
        began = time.monotonic()
        with pytest.raises(StoreUnavailable):
            call()
        assert time.monotonic() - began < 3.0  # retries and transactions stay within timeout_s


def test_firestore_contention_and_outage_map_to_retryable_503s() -> None:
    from shared.chaos.errors import StoreContended
    from shared.chaos.firestore_store import _mapped
    from shared.gcp import firestore as fs

    with pytest.raises(StoreContended) as info, _mapped("experiments.stop"):
        raise fs.Contention("experiments.stop", "Failed to commit transaction in 3 attempts")
    assert (info.value.status_code, info.value.code) == (503, "store_contended")
    assert info.value.headers() == {"Retry-After": "1"}
    with pytest.raises(StoreUnavailable), _mapped("experiments.get"):
        raise OSError("connection refused")
