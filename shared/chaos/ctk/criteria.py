"""The tolerance of a load probe: several thresholds over one report, all of which must hold.

Chaos Toolkit gives a hypothesis probe one tolerance; a load probe is costly, so one run is judged
on several numbers at once through a ``type: probe`` tolerance::

    tolerance:
      type: probe
      name: answered-and-fast
      provider:
        type: python
        module: shared.chaos.ctk.criteria
        func: meets
        arguments:
          criteria:
            answered_ratio: {">=": 0.99}
            latency_ms.p95: {"<": 800}

Chaos Toolkit passes the probe's output as ``value``. A path is dotted keys into it; a missing or
null number fails its criterion. Every criterion that fails is logged (name, value, threshold)
on Chaos Toolkit's logger, so the terminal and ``chaostoolkit.log`` say why a run deviated.
"""

from __future__ import annotations

import logging
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from shared.chaos.ctk.errors import InvalidArgument

__all__ = ["OPERATORS", "failures", "meets"]

logger = logging.getLogger("chaostoolkit")

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


def lookup(value: Any, path: str) -> Any:
    """``value`` followed along the dotted ``path`` (None where a key is missing)."""
    current = value
    for key in path.split("."):
        if not isinstance(current, Mapping) or key not in current:
            return None
        current = current[key]
    return current


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


def _checked(criteria: Any) -> list[tuple[str, str, float]]:
    """``[(path, op, threshold)]``; every malformed criterion named in one InvalidArgument."""
    if not isinstance(criteria, Mapping) or not criteria:
        raise InvalidArgument(
            f"criteria must be a non-empty mapping of path: {{op: number}}, got {criteria!r}"
        )
    rules: list[tuple[str, str, float]] = []
    problems: list[str] = []
    for path, comparisons in criteria.items():
        if not isinstance(comparisons, Mapping) or not comparisons:
            problems.append(f"{path}: expected {{op: number}}, got {comparisons!r}")
            continue
        for op, threshold in comparisons.items():
            number = _number(threshold)
            if op not in OPERATORS or number is None:
                problems.append(
                    f"{path}: {op!r}: {threshold!r} (ops: {', '.join(OPERATORS)}; a number)"
                )
            else:
                rules.append((str(path), str(op), number))
    if problems:
        raise InvalidArgument("invalid criteria: " + "; ".join(problems))
    return rules


def failures(value: Any, criteria: Mapping[str, Mapping[str, float]]) -> list[str]:
    """The criteria ``value`` does not meet, each as ``"path = got, wanted op threshold"``."""
    failed = []
    for path, op, threshold in _checked(criteria):
        got = _number(lookup(value, path))
        if got is None or not OPERATORS[op](got, threshold):
            failed.append(f"{path} = {got!r}, wanted {op} {threshold:g}")
    return failed


def meets(value: Any = None, criteria: Mapping[str, Mapping[str, float]] | None = None) -> bool:
    """True when ``value`` (the probe's output) meets every one of ``criteria``."""
    failed = failures(value, criteria or {})
    for line in failed:
        logger.warning("criterion not met: %s", line)
    return not failed
