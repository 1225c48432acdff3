"""Tolerances: whether a probe's output is acceptable.

Four forms, all optionally aimed at a part of the output by a dotted ``path`` rooted at
``output`` (``output.fallback.answer_rate``, ``output.status_counts.200``, ``output.items.0``):

- exact: the value equals ``value`` (booleans only equal booleans);
- range: ``low <= value <= high`` (numbers);
- comparison: ``value <op> bound`` with op one of ``>``, ``>=``, ``<``, ``<=``, ``==``, ``!=``;
- (no path) the whole output is used.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from shared.playbook.errors import ToleranceError

ToleranceKind: TypeAlias = Literal["exact", "range", "compare"]

OPERATORS: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
ROOT: Final = "output"


@dataclass(frozen=True, slots=True)
class Tolerance:
    """A validated tolerance; ``path`` is None for the whole output."""

    kind: ToleranceKind
    value: Any = None
    low: float = 0.0
    high: float = 0.0
    op: str = "=="
    path: str | None = None

    def describe(self) -> str:
        """The tolerance as a short phrase: ``output.x >= 0.99``."""
        target = self.path or ROOT
        if self.kind == "range":
            return f"{self.low:g} <= {target} <= {self.high:g}"
        if self.kind == "compare":
            return f"{target} {self.op} {self.value!r}"
        return f"{target} == {self.value!r}"


@dataclass(frozen=True, slots=True)
class ToleranceResult:
    """Whether the tolerance held, the value it looked at, and why it did not hold."""

    met: bool
    actual: Any
    reason: str = ""


def lookup(output: Any, path: str | None) -> Any:
    """The part of ``output`` that ``path`` names; :class:`ToleranceError` if absent."""
    if path is None or path == ROOT:
        return output
    segments = path.split(".")
    if segments[0] != ROOT:
        raise ToleranceError(f"path {path!r} must start with {ROOT!r}")
    current = output
    walked = ROOT
    for segment in segments[1:]:
        if isinstance(current, Mapping):
            if segment not in current:
                keys = ", ".join(sorted(str(k) for k in current)) or "(none)"
                raise ToleranceError(f"{walked} has no key {segment!r}; keys: {keys}")
            current = current[segment]
        elif isinstance(current, Sequence) and not isinstance(current, str | bytes):
            if not segment.isdigit() or int(segment) >= len(current):
                raise ToleranceError(
                    f"{walked} is a list of {len(current)} items; {segment!r} is not an index"
                )
            current = current[int(segment)]
        else:
            raise ToleranceError(f"{walked} is {type(current).__name__}, not a mapping or list")
        walked = f"{walked}.{segment}"
    return current


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check(tolerance: Tolerance, output: Any) -> ToleranceResult:
    """Apply ``tolerance`` to ``output``; a missing path or a non-number is "not met"."""
    try:
        actual = lookup(output, tolerance.path)
    except ToleranceError as exc:
        return ToleranceResult(False, None, str(exc))
    if tolerance.kind == "exact":
        same_kind = isinstance(actual, bool) == isinstance(tolerance.value, bool)
        met = same_kind and actual == tolerance.value
        return ToleranceResult(met, actual, "" if met else f"{actual!r} != {tolerance.value!r}")
    if not _is_number(actual) and not (
        tolerance.kind == "compare" and tolerance.op in ("==", "!=")
    ):
        return ToleranceResult(False, actual, f"{actual!r} is not a finite number")
    if tolerance.kind == "range":
        met = tolerance.low <= actual <= tolerance.high
        reason = "" if met else f"{actual!r} is outside [{tolerance.low:g}, {tolerance.high:g}]"
        return ToleranceResult(met, actual, reason)
    met = bool(OPERATORS[tolerance.op](actual, tolerance.value))
    reason = "" if met else f"{actual!r} {tolerance.op} {tolerance.value!r} is false"
    return ToleranceResult(met, actual, reason)
