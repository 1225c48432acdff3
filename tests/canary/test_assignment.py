"""The serving side: cohorts from the cached document, stable on failure, breaker heartbeats."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.canary import Decision, Rollout, RolloutFollower, RolloutStore
from shared.canary.signals import breakers_open
from shared.gcp import firestore as fs
from shared.resilience.clock import FakeClock

pytestmark = pytest.mark.firestore

USERS = [f"user-{i}" for i in range(400)]


class CountingStore(RolloutStore):
    def __init__(self, client: Any) -> None:
        super().__init__(lambda: client, timeout_s=5)
        self.reads = 0
        self.beats: list[dict[str, Any]] = []

    def read(self, name: str, timeout_s: float) -> Rollout | None:
        self.reads += 1
        return super().read(name, timeout_s)

    def beat(self, name: str, instance: str, breakers: Any, now: float, timeout_s: float) -> None:
        self.beats.append(dict(breakers))
        super().beat(name, instance, breakers, now, timeout_s)


@pytest.fixture
def store(firestore_client: Any) -> CountingStore:
    return CountingStore(firestore_client)


def test_cohorts_follow_the_document(store: CountingStore) -> None:
    clock = FakeClock(start=1_800_000_000.0)
    follower = RolloutFollower("ask-model", store, refresh_s=2.0, clock=clock)
    assert follower.assign("user-1").cohort == "stable"  # no rollout yet
    assert follower.assign("user-1").version is None
    rollout = store.start("ask-model", service="graphAsk", stable="v1", candidate="v2",
                          now=clock.time())  # fmt: skip
    assert follower.assign("user-1").version is None  # the cached copy, for refresh_s
    clock.sleep(2.0)
    assignments = [follower.assign(u) for u in USERS]
    candidates = [a for a in assignments if a.cohort == "candidate"]
    assert 10 < len(candidates) < 80  # about 10% of 400
    assert {a.version for a in candidates} == {"v2"}
    assert {a.version for a in assignments if a.cohort == "stable"} == {"v1"}
    assert [follower.assign(u) for u in USERS] == assignments  # same user, same cohort
    assert store.reads == 2
    store.apply(rollout, Decision("rollback", 10, 0, "gate", ("slow",)), clock.time())
    clock.sleep(2.0)
    assert {follower.assign(u).cohort for u in USERS} == {"stable"}
    assert {follower.assign(u).version for u in USERS} == {"v1"}


def test_an_unreachable_store_serves_stable_within_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo-unreachable")
    fs.reset_clients()
    follower = RolloutFollower("ask-model", RolloutStore(), timeout_s=0.5)
    started = time.monotonic()
    assignment = follower.assign("user-1")
    assert (assignment.cohort, assignment.version) == ("stable", None)
    assert time.monotonic() - started < 4.0
    fs.reset_clients()


def test_heartbeats_report_breakers_not_closed(store: CountingStore) -> None:
    store.start("ask-model", service="graphAsk", stable="v1", candidate="v2", now=1.0)
    clock = FakeClock(start=1_800_000_000.0)
    states = {"graph": "closed", "llm:v2": "closed"}
    seen: list[Rollout | None] = []

    def breaker_states(rollout: Rollout | None) -> dict[str, str]:
        seen.append(rollout)
        return dict(states)

    follower = RolloutFollower(
        "ask-model", store, refresh_s=1.0, beat_every_s=30.0,
        breaker_states=breaker_states, clock=clock, instance="i-1",
    )  # fmt: skip
    follower.assign("u")
    assert seen[-1] is not None  # the callback gets the rollout as just read
    assert seen[-1].candidate == "v2"
    states["llm:v2"] = "open"
    clock.sleep(1.0)
    follower.assign("u")
    opened = clock.time()
    states["llm:v2"] = "half-open"  # still not closed: open since the first sighting
    clock.sleep(1.0)
    follower.assign("u")
    clock.sleep(1.0)
    follower.assign("u")  # unchanged within beat_every_s: not written again
    assert [b["llm:v2"] for b in store.beats] == [
        {"state": "closed", "open_since": None},
        {"state": "open", "open_since": opened},
        {"state": "half-open", "open_since": opened},
    ]
    beats = store.heartbeats("ask-model", clock.time() - 60)
    assert breakers_open(beats, clock.time()) == {"llm:v2": 2.0}
    states["llm:v2"] = "closed"
    clock.sleep(1.0)
    follower.assign("u")
    assert breakers_open(store.heartbeats("ask-model", clock.time() - 60), clock.time()) == {}
