"""Breaker and retry together, breaker outside: one exhausted retry sequence is one failure.

This is the seed's ``withBreaker(b, () => retry(fn, 3))``. With the breaker outside, an open breaker
refuses at once (no retry loop runs against a dependency known to be down), and a retry sequence
that ends in failure counts once toward tripping it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, Unpack

from shared.resilience.retries import RetryOptions, retry

T = TypeVar("T")


class Breaker(Protocol):
    """What composition needs of a circuit breaker."""

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


def with_breaker(breaker: Breaker, fn: Callable[[], T]) -> T:
    """Run ``fn`` through ``breaker``; raises ``CircuitOpenError`` when it is open."""
    return breaker.call(fn)


def with_breaker_and_retry(
    breaker: Breaker, fn: Callable[[], T], attempts: int = 3, **retry_options: Unpack[RetryOptions]
) -> T:
    """Run ``fn`` with up to ``attempts`` tries inside one call through ``breaker``.

    ``retry_options`` are those of :func:`~shared.resilience.retries.retry`
    (:class:`~shared.resilience.retries.RetryOptions`).
    """
    return breaker.call(lambda: retry(fn, attempts, **retry_options))
