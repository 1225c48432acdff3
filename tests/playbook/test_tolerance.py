"""Tolerances applied to outputs: exact, range, comparison, dotted paths."""

from __future__ import annotations

from typing import Any

import pytest

from shared.playbook import Tolerance, check, lookup
from shared.playbook.errors import ToleranceError

OUTPUT = {"status": 200, "fallback": {"answer_rate": 0.995, "hit": None}, "items": [1, 2, 3]}


@pytest.mark.parametrize(
    ("tolerance", "output", "met"),
    [
        (Tolerance("exact", value=200, path="output.status"), OUTPUT, True),
        (Tolerance("exact", value=201, path="output.status"), OUTPUT, False),
        (Tolerance("exact", value=True), 1, False),  # booleans only equal booleans
        (Tolerance("exact", value=True), True, True),
        (Tolerance("range", low=0.99, high=1.0, path="output.fallback.answer_rate"), OUTPUT, True),
        (
            Tolerance("range", low=0.999, high=1.0, path="output.fallback.answer_rate"),
            OUTPUT,
            False,
        ),
        (Tolerance("range", low=0, high=10), 10, True),  # bounds are inclusive
        (
            Tolerance("compare", value=0.99, op=">=", path="output.fallback.answer_rate"),
            OUTPUT,
            True,
        ),
        (
            Tolerance("compare", value=0.995, op=">", path="output.fallback.answer_rate"),
            OUTPUT,
            False,
        ),
        (Tolerance("compare", value=3, op="==", path="output.items.2"), OUTPUT, True),
        (Tolerance("compare", value=0.5, op=">=", path="output.fallback.hit"), OUTPUT, False),
        (Tolerance("compare", value=1, op="<", path="output.nothing"), OUTPUT, False),
    ],
)
def test_check(tolerance: Tolerance, output: Any, met: bool) -> None:
    assert check(tolerance, output).met is met


def test_not_met_says_why() -> None:
    result = check(Tolerance("compare", value=1, op="<", path="output.fallback.rate"), OUTPUT)
    assert result.reason == "output.fallback has no key 'rate'; keys: answer_rate, hit"
    result = check(Tolerance("compare", value=0.5, op=">=", path="output.fallback.hit"), OUTPUT)
    assert result.reason == "None is not a finite number"


def test_lookup_errors() -> None:
    with pytest.raises(ToleranceError, match="is a list of 3 items; '7' is not an index"):
        lookup(OUTPUT, "output.items.7")
    with pytest.raises(ToleranceError, match=r"output\.status is int, not a mapping or list"):
        lookup(OUTPUT, "output.status.code")


def test_describe() -> None:
    assert Tolerance("compare", value=0.99, op=">=", path="output.x").describe() == (
        "output.x >= 0.99"
    )
    assert Tolerance("range", low=1, high=2).describe() == "1 <= output <= 2"
