"""A context variable set for the length of a ``with`` block."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Generic, TypeVar

T = TypeVar("T")


class scoped(Generic[T]):
    """``with scoped(var, value):`` makes ``value`` current in ``var`` and restores it after.

    A class rather than a ``contextlib.contextmanager`` generator: ``@observed`` enters two of
    them on every request, and a generator context manager costs several times as much.
    """

    __slots__ = ("_token", "_value", "_var")

    def __init__(self, var: ContextVar[T], value: T) -> None:
        self._var = var
        self._value = value
        self._token: Token[T] | None = None

    def __enter__(self) -> T:
        self._token = self._var.set(self._value)
        return self._value

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            self._var.reset(self._token)
            self._token = None
