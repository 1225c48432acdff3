"""shared.resilience.testing.reset: every global of the package back to how a process starts."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from shared.resilience import events, testing
from shared.resilience.cache import cache_set, cached, default_cache
from shared.resilience.circuit import breaker, breakers
from shared.resilience.clock import FakeClock
from shared.resilience.limiter import default_throttle
from shared.resilience.llm import MODEL_TABLE_ENV, model_table
from shared.resilience.llm_providers import default_providers
from shared.resilience.retries import retry


def test_reset_restores_the_default_hooks_and_zeroes_the_counters() -> None:
    events.set_hooks((events.Recorder(),))
    events.METRICS(events.LimiterWaited("x", waited=1.0))
    testing.reset()
    assert [type(h) for h in events.hooks()] == [
        events.LoggingHook,
        events.Metrics,
        events.TelemetryDefault,
    ]
    assert events.METRICS.count(events.LimiterWaited.kind) == 0


def test_reset_forgets_breakers_the_default_cache_and_the_throttle() -> None:
    breaker("dep")
    cache_set("k", "v", 60)
    assert cached("k", 60, lambda: "other") == "v"
    default_throttle().wait("key", min_interval=0.0)
    testing.reset()
    assert breakers() == {}
    assert cached("k", 60, lambda: "fresh") == "fresh"
    stats = default_cache().stats()
    assert (stats.hits, stats.misses, stats.loads, stats.size) == (0, 1, 1, 1)
    assert default_throttle().stats().calls == 0


def test_reset_releases_what_retrys_memo_holds() -> None:
    clock = FakeClock()
    assert retry(lambda: "ok", 3, clock=clock) == "ok"
    held = weakref.ref(clock)
    del clock
    gc.collect()
    assert held() is not None  # the memoized policy keeps it
    testing.reset()
    gc.collect()
    assert held() is None


def test_reset_reads_the_model_table_file_again(tmp_path: Path) -> None:
    path = tmp_path / "models.yaml"
    env = {MODEL_TABLE_ENV: str(path)}
    path.write_text("models:\n  local-llm:\n    base_url: http://127.0.0.1:1111/v1\n")
    assert model_table(env).spec("local-llm").base_url == "http://127.0.0.1:1111/v1"
    path.write_text("models:\n  local-llm:\n    base_url: http://127.0.0.1:2222/v1\n")
    assert model_table(env).spec("local-llm").base_url.endswith(":1111/v1")  # parsed once
    testing.reset()
    assert model_table(env).spec("local-llm").base_url == "http://127.0.0.1:2222/v1"


def test_reset_builds_new_default_providers() -> None:
    before = default_providers()
    assert default_providers() is before
    testing.reset()
    assert default_providers() is not before
