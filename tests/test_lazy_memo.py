"""shared.lazy.Memo: one value per key, made on first use, once under threads, until clear()."""

from __future__ import annotations

import threading

import pytest

from shared.lazy import Memo


def test_a_value_is_made_once_per_key_even_when_threads_race() -> None:
    made: list[str] = []
    gate = threading.Event()

    def make(key: str) -> object:
        gate.wait(5)  # holds the first make open while the other threads arrive
        made.append(key)
        return object()

    memo: Memo[str, object] = Memo(make)
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(memo("a"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert made == ["a"]
    assert len({id(value) for value in seen}) == 1
    assert memo("b") is not memo("a")
    assert made == ["a", "b"]


def test_a_failing_make_leaves_nothing_and_the_next_use_tries_again() -> None:
    calls: list[int] = []

    def make(key: int) -> int:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("not yet")
        return key * 10

    memo: Memo[int, int] = Memo(make)
    with pytest.raises(RuntimeError, match="not yet"):
        memo(1)
    assert memo(1) == 10
    assert memo(1) == 10
    assert calls == [1, 1]


def test_clear_forgets_every_value() -> None:
    memo: Memo[str, list[str]] = Memo(lambda key: [key])
    first = memo("k")
    memo.clear()
    assert memo("k") == first
    assert memo("k") is not first
