"""The multi-criteria tolerance: every threshold must hold; failures are named."""

from __future__ import annotations

import logging

import pytest

from shared.chaos.ctk.criteria import failures, meets
from shared.chaos.ctk.errors import InvalidArgument

REPORT = {"answered_ratio": 0.995, "latency_ms": {"p95": 900.0}, "refused": {"ratio": None}}


def test_all_met() -> None:
    assert meets(REPORT, {"answered_ratio": {">=": 0.99}, "latency_ms.p95": {"<": 1000}})


def test_one_failing_criterion_fails_and_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    criteria = {"answered_ratio": {">=": 0.99}, "latency_ms.p95": {"<": 800}}
    with caplog.at_level(logging.WARNING, logger="chaostoolkit"):
        assert not meets(REPORT, criteria)
    assert "criterion not met: latency_ms.p95 = 900.0, wanted < 800" in caplog.text


def test_missing_or_null_numbers_fail() -> None:
    assert failures(REPORT, {"refused.ratio": {"<=": 1}, "nope.p95": {"<": 1}}) == [
        "refused.ratio = None, wanted <= 1",
        "nope.p95 = None, wanted < 1",
    ]


def test_both_bounds_on_one_path() -> None:
    assert meets({"x": 5}, {"x": {">": 1, "<=": 5}})
    assert not meets({"x": 6}, {"x": {">": 1, "<=": 5}})


def test_malformed_criteria_are_all_named() -> None:
    with pytest.raises(InvalidArgument) as info:
        meets(REPORT, {"a": {"~": 1}, "b": {"<": "x"}, "c": 3})
    assert str(info.value) == (
        "invalid criteria: a: '~': 1 (ops: <, <=, >, >=, ==; a number); "
        "b: '<': 'x' (ops: <, <=, >, >=, ==; a number); c: expected {op: number}, got 3"
    )
    with pytest.raises(InvalidArgument, match="non-empty mapping"):
        meets(REPORT, {})
