"""shared.resilience.sessions: one session per dependency, made on first use, pooled, closable."""

from __future__ import annotations

import threading

import requests

from shared.resilience.sessions import POOL_SIZE, LazySession, pooled_session
from tests.resilience.test_llm_providers import CountingSessions


def test_no_session_is_made_before_first_use_and_one_for_all_threads() -> None:
    factory = CountingSessions()
    lazy = LazySession(factory)
    assert factory.made == []
    seen: list[requests.Session] = []
    threads = [threading.Thread(target=lambda: seen.append(lazy.get())) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(factory.made) == 1
    assert all(session is factory.made[0] for session in seen)


def test_close_makes_the_next_use_make_a_new_session() -> None:
    factory = CountingSessions()
    lazy = LazySession(factory)
    first = lazy.get()
    lazy.close()
    lazy.close()  # closing twice is harmless
    assert lazy.get() is not first
    assert len(factory.made) == 2


def test_the_default_session_keeps_pool_size_connections_per_host() -> None:
    session = LazySession().get()
    for scheme in ("http://", "https://"):
        adapter = session.get_adapter(f"{scheme}example.test/")
        assert isinstance(adapter, requests.adapters.HTTPAdapter)
        assert adapter._pool_maxsize == POOL_SIZE  # the adapter keeps no public view of it
    assert pooled_session(3).get_adapter("http://x.test/")._pool_maxsize == 3
