"""Event hooks: use_hooks chooses hooks for one context only; the process's hooks serve the rest."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest

from shared.resilience import events


def emitted(name: str) -> events.Event:
    return events.LimiterWaited(name, waited=0.0)


def names(recorder: events.Recorder) -> list[str]:
    return [e.name for e in recorder.events]


@pytest.fixture
def process_recorder() -> Iterator[events.Recorder]:
    """A recorder installed as the process's only hook (restored after)."""
    recorder = events.Recorder()
    previous = events.set_hooks((recorder,))
    yield recorder
    events.set_hooks(previous)


def test_a_context_with_its_own_hooks_does_not_divert_another_threads_events(
    process_recorder: events.Recorder,
) -> None:
    chosen = events.Recorder()
    inside = threading.Event()
    other_done = threading.Event()

    def probe() -> None:
        with events.use_hooks(chosen):
            events.emit(emitted("probe"))
            inside.set()
            assert other_done.wait(5)  # the other caller emits while this block is open
            events.emit(emitted("probe-again"))

    def other_caller() -> None:
        assert inside.wait(5)
        events.emit(emitted("other"))
        other_done.set()

    threads = [threading.Thread(target=probe), threading.Thread(target=other_caller)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert names(chosen) == ["probe", "probe-again"]
    assert names(process_recorder) == ["other"]


def test_asyncio_tasks_keep_their_own_hooks() -> None:
    first, second = events.Recorder(), events.Recorder()

    async def task(recorder: events.Recorder, name: str) -> None:
        with events.use_hooks(recorder):
            for i in range(3):
                events.emit(emitted(f"{name}{i}"))
                await asyncio.sleep(0)  # interleave with the other task

    async def both() -> None:
        await asyncio.gather(task(first, "a"), task(second, "b"))

    asyncio.run(both())
    assert names(first) == ["a0", "a1", "a2"]
    assert names(second) == ["b0", "b1", "b2"]


def test_blocks_nest_and_restore(process_recorder: events.Recorder) -> None:
    outer, inner = events.Recorder(), events.Recorder()
    with events.use_hooks(outer):
        events.emit(emitted("1"))
        with events.use_hooks(inner):
            events.emit(emitted("2"))
            assert events.hooks() == (inner,)
        events.emit(emitted("3"))
    events.emit(emitted("4"))
    assert (names(outer), names(inner), names(process_recorder)) == (["1", "3"], ["2"], ["4"])


def test_a_copied_context_carries_the_hooks_into_a_thread() -> None:
    chosen = events.Recorder()
    with events.use_hooks(chosen):
        context = contextvars.copy_context()
    # The block is closed here; the copy still holds the hooks chosen inside it.
    thread = threading.Thread(target=context.run, args=(events.emit, emitted("in-thread")))
    thread.start()
    thread.join(5)
    assert names(chosen) == ["in-thread"]


def test_use_hooks_with_no_hooks_silences_this_context(
    process_recorder: events.Recorder,
) -> None:
    with events.use_hooks():
        events.emit(emitted("muted"))
    assert process_recorder.events == []


def test_set_and_add_hooks_change_the_process_default(
    process_recorder: events.Recorder,
) -> None:
    extra = events.Recorder()
    events.add_hook(extra)
    assert events.hooks() == (process_recorder, extra)
    thread = threading.Thread(target=events.emit, args=(emitted("from-a-thread"),))
    thread.start()
    thread.join(5)
    events.emit(emitted("here"))
    assert names(extra) == names(process_recorder) == ["from-a-thread", "here"]


def test_reset_hooks_restores_logging_metrics_and_telemetry() -> None:
    events.set_hooks(())
    events.reset_hooks()
    kinds = [type(h) for h in events.hooks()]
    assert kinds == [events.LoggingHook, events.Metrics, events.TelemetryDefault]
    assert events.hooks()[1] is events.METRICS


def test_a_failing_hook_does_not_stop_the_others_or_the_caller() -> None:
    recorder = events.Recorder()

    def broken(event: events.Event) -> None:
        raise RuntimeError("hook bug")

    with events.use_hooks(broken, recorder):
        events.emit(emitted("still-delivered"))
    assert names(recorder) == ["still-delivered"]
