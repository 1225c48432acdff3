"""shared.settings: typed reads, every problem collected, per-process memo with one reset."""

from __future__ import annotations

import threading

import pytest

from shared.settings import PROJECT_VARIABLES, Env, Problem, SettingsError, once, reset_settings


def test_unset_and_blank_values_take_the_default() -> None:
    env = Env({"BLANK": "   "})
    assert env.text("MISSING", "d") == "d"
    assert env.text("BLANK") is None
    assert env.integer("BLANK", 3, low=1, high=5) == 3
    assert env.number("MISSING", 2.5, low=0, high=10) == 2.5
    assert env.flag("MISSING", True) is True
    env.check()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("1", True), ("YES", True), ("on", True), ("false", False), ("0", False)],
)
def test_flags(raw: str, expected: bool) -> None:
    assert Env({"F": raw}).flag("F", not expected) is expected


def test_values_in_range_are_read() -> None:
    env = Env({"I": " 7 ", "N": "0.25", "C": "IAM", "T": " hello "})
    assert env.integer("I", 1, low=1, high=7) == 7
    assert env.number("N", 1.0, low=0.0, high=1.0) == 0.25
    assert env.choice("C", "none", ("firebase", "iam", "none")) == "iam"
    assert env.text("T") == "hello"
    env.check()


def test_every_problem_is_collected_with_name_value_and_range() -> None:
    env = Env({"I": "0", "N": "nan", "F": "maybe", "C": "root", "P": "x", "BIG": "1e999"})
    assert env.integer("I", 4, low=1, high=10) == 4
    assert env.number("N", 1.5, low=0, high=60) == 1.5
    assert env.number("BIG", 1.5, low=0, high=60) == 1.5
    assert env.flag("F", False) is False
    assert env.choice("C", "none", ("iam", "none")) == "none"

    def parser(value: str) -> int:
        raise ValueError("not a pair")

    assert env.parse("P", 9, parser, allowed="name=url pairs") == 9
    with pytest.raises(SettingsError) as caught:
        env.check()
    assert caught.value.problems == (
        Problem("I", "0", "an integer from 1 to 10"),
        Problem("N", "nan", "a number from 0 to 60"),
        Problem("BIG", "1e999", "a number from 0 to 60"),
        Problem("F", "maybe", "one of true, false (or 1, 0, yes, no, on, off)"),
        Problem("C", "root", "one of iam, none"),
        Problem("P", "x", "name=url pairs (not a pair)"),
    )
    assert "I='0': must be an integer from 1 to 10" in str(caught.value)


def test_long_values_are_cut_in_the_message() -> None:
    env = Env({"I": "9" * 500})
    env.integer("I", 1, low=1, high=2)
    assert len(env.problems[0].value) == 80


def test_once_memoizes_until_reset() -> None:
    calls: list[int] = []

    @once
    def load() -> int:
        calls.append(1)
        return len(calls)

    assert load() == 1
    assert load() == 1
    reset_settings()
    assert load() == 2
    assert load.__name__ == "load"


def test_once_retries_a_failed_load_and_loads_once_under_threads() -> None:
    attempts: list[int] = []
    gate = threading.Barrier(8)

    @once
    def load() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise SettingsError((Problem("X", "y", "z"),))
        return 42

    with pytest.raises(SettingsError):
        load()
    results: list[int] = []

    def worker() -> None:
        gate.wait()
        results.append(load())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [42] * 8
    assert len(attempts) == 2


def test_project_is_the_first_project_variable_set() -> None:
    assert Env({}).project() is None
    assert Env({"GCLOUD_PROJECT": "firebase", "GCP_PROJECT": " "}).project() == "firebase"
    assert Env({"GCLOUD_PROJECT": "firebase", "GCP_PROJECT": "old"}).project() == "old"
    everything = {"GCLOUD_PROJECT": "firebase", "GCP_PROJECT": "old", "GOOGLE_CLOUD_PROJECT": "new"}
    assert Env(everything).project() == "new"
    assert PROJECT_VARIABLES == ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GCLOUD_PROJECT")
