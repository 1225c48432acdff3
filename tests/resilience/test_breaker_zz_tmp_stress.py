"""TEMPORARY: larger searches for the shared-storage family. Deleted after the run."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.resilience.breaker_storage import MemoryStorage, RedisStorage
from shared.resilience.circuit import Circuit
from shared.resilience.clock import FakeClock
from tests.resilience.breaker_conftest_helpers import bad_request, fail, ok, outcome
from tests.resilience.test_breaker_model import Model, check, check_pair, configs, steps

many = st.lists(
    st.one_of(
        st.tuples(st.integers(0, 2), st.sampled_from(["ok", "fail", "business"])),
        st.integers(min_value=1, max_value=48).map(lambda q: q / 4),
    ),
    max_size=80,
)


def check_many(config, sequence, storages):
    if config["failure_rate_threshold"] is not None:
        config = {**config, "failure_rate_threshold": None, "fail_max": config["fail_max"] or 3}
    clock = FakeClock(start=1_700_000_000.0)
    circuits = [Circuit(name="model", clock=clock, storage=s, **config) for s in storages]
    model = Model(config["fail_max"], config["reset_timeout"], config["success_threshold"], None, 1, 1)
    fns = {"ok": ok(), "fail": fail(), "business": bad_request}
    for i, step in enumerate(sequence):
        if isinstance(step, float):
            clock.advance(step)
            continue
        who, kind = step
        c = circuits[who]
        assert outcome(c, fns[kind]) == model.call(kind, clock.time()), (i, step)
        for c in circuits:
            assert c.state == model.effective_state(clock.time()), (i, step)
            assert c.retry_after() == pytest.approx(model.retry_after(clock.time())), (i, step)
            assert c.stats().consecutive_failures == (model.fails if model.state == "closed" else c.stats().consecutive_failures)


@settings(max_examples=5000, deadline=None)
@given(config=configs(), sequence=steps)
def test_mem_single(config, sequence):
    check(config, sequence, MemoryStorage("model"))


@settings(max_examples=5000, deadline=None)
@given(config=configs(), sequence=steps)
def test_mem_pair(config, sequence):
    s = MemoryStorage("model")
    check_pair(config, sequence, (s, s))


@settings(max_examples=5000, deadline=None)
@given(config=configs(), sequence=many)
def test_mem_three(config, sequence):
    s = MemoryStorage("model")
    check_many(config, sequence, (s, s, s))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs(), sequence=steps)
def test_redis_single(redis_client: Any, config, sequence):
    check(config, sequence, RedisStorage(redis_client, "model", namespace=uuid.uuid4().hex))


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs(), sequence=steps)
def test_redis_pair(redis_client: Any, config, sequence):
    port = redis_client.connection_pool.connection_kwargs["port"]
    other = redis.Redis(host="127.0.0.1", port=port)
    ns = uuid.uuid4().hex
    try:
        check_pair(config, sequence, (RedisStorage(redis_client, "model", namespace=ns), RedisStorage(other, "model", namespace=ns)))
    finally:
        other.close()


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=configs(), sequence=many)
def test_redis_three(redis_client: Any, config, sequence):
    ns = uuid.uuid4().hex
    check_many(config, sequence, tuple(RedisStorage(redis_client, "model", namespace=ns) for _ in range(3)))
