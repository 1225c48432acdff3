"""Which exceptions count against a circuit: all but the excluded types and predicates."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from shared.resilience.circuit.config import ExcludeRule
from shared.resilience.transient import is_business_error

__all__ = ["Exclusion"]

logger = logging.getLogger("shared.resilience.circuit")


class Exclusion:
    """Tells failures from excluded errors (which the caller still sees, and which count as
    successes for the circuit)."""

    __slots__ = ("_name", "_predicates", "_types")

    def __init__(self, name: str, rules: Iterable[ExcludeRule], business_errors: bool) -> None:
        self._name = name
        rules = tuple(rules)
        # isinstance, not pybreaker's ``type(rule) is type``: that test calls an exception class
        # with a custom metaclass as a predicate (and so excludes everything).
        self._types = tuple(r for r in rules if isinstance(r, type))
        predicates = [r for r in rules if not isinstance(r, type)]
        if business_errors:
            predicates.insert(0, is_business_error)
        self._predicates = tuple(predicates)

    def is_failure(self, exc: BaseException) -> bool:
        """True when ``exc`` counts as a failure; a predicate that raises is logged and ignored."""
        if isinstance(exc, self._types):
            return False
        for predicate in self._predicates:
            try:
                if predicate(exc):
                    return False
            except Exception:
                logger.exception("breaker %r: exclude predicate %r failed", self._name, predicate)
        return True
