"""Settings from the environment: typed, bounded, every problem collected, read once per instance.

One reader for every function, script and the local stack::

    env = Env()
    timeout = env.number("CHAOS_UPSTREAM_TIMEOUT_S", 30.0, low=0.001, high=3600.0)
    enabled = env.flag("CHAOS_ENABLED", False)
    env.check()  # SettingsError naming every bad variable, its value and what is allowed

A read never raises: a bad value is recorded and the default returned, so one ``check()`` reports
all of them together (as chaostoolkit and our SLO config validation do). Settings objects are
built on first use, never at import, and memoized per process with :func:`once`;
:func:`reset_settings` forgets every memo (tests call it between cases).
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

__all__ = ["PROJECT_VARIABLES", "Env", "Problem", "SettingsError", "once", "reset_settings"]

T = TypeVar("T")
C = TypeVar("C", bound=str)

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
#: Where the Google Cloud project is named, first found wins: the current runtimes and client
#: libraries, the older Python runtimes, Firebase's tools and emulators.
PROJECT_VARIABLES: Final = ("GOOGLE_CLOUD_PROJECT", "GCP_PROJECT", "GCLOUD_PROJECT")
_FALSE: Final = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad variable: its name, the raw value (cut to 80 characters) and what is allowed."""

    name: str
    value: str
    allowed: str

    def __str__(self) -> str:
        return f"{self.name}={self.value!r}: must be {self.allowed}"


class SettingsError(ValueError):
    """One or more environment variables are invalid; ``problems`` lists each of them."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        self.problems = problems
        super().__init__("invalid settings: " + "; ".join(str(p) for p in problems))


class Env:
    """Typed reads of environment variables, collecting problems instead of raising.

    Empty or whitespace-only values count as unset. Bounds are inclusive.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = os.environ if environ is None else environ
        self.problems: list[Problem] = []

    def raw(self, name: str) -> str | None:
        """The stripped value, or None when unset or blank."""
        value = self._env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        return default if value is None else value

    def project(self) -> str | None:
        """The Google Cloud project: the first of :data:`PROJECT_VARIABLES` that is set."""
        for name in PROJECT_VARIABLES:
            value = self.raw(name)
            if value is not None:
                return value
        return None

    def flag(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return self._bad(name, value, "one of true, false (or 1, 0, yes, no, on, off)", default)

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            return self._bad(name, value, f"an integer from {low} to {high}", default)
        return number

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and low <= number <= high):
            return self._bad(name, value, f"a number from {low:g} to {high:g}", default)
        return number

    def choice(self, name: str, default: C, choices: tuple[C, ...]) -> C:
        value = self.raw(name)
        if value is None:
            return default
        for choice in choices:
            if value.lower() == choice:
                return choice
        return self._bad(name, value, "one of " + ", ".join(choices), default)

    def parse(self, name: str, default: T, parser: Callable[[str], T], *, allowed: str) -> T:
        """``parser(value)``; a ``ValueError`` from it is a problem described by ``allowed``."""
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parser(value)
        except ValueError as exc:
            detail = f" ({exc})" if str(exc) else ""
            return self._bad(name, value, allowed + detail, default)

    def check(self) -> None:
        """Raise :class:`SettingsError` if any read so far found a bad value."""
        if self.problems:
            raise SettingsError(tuple(self.problems))

    def _bad(self, name: str, value: str, allowed: str, default: T) -> T:
        self.problems.append(Problem(name, value[:80], allowed))
        return default


class _Once(Generic[T]):
    """A zero-argument loader computed on first call and kept until :func:`reset_settings`."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._value: tuple[T] | None = None
        functools.update_wrapper(self, load)

    def __call__(self) -> T:
        cached = self._value
        if cached is not None:
            return cached[0]
        with self._lock:
            if self._value is None:
                self._value = (self._load(),)
            return self._value[0]

    def reset(self) -> None:
        with self._lock:
            self._value = None


_MEMOS: list[_Once[object]] = []
_MEMOS_LOCK = threading.Lock()


def once(load: Callable[[], T]) -> Callable[[], T]:
    """Memoize a settings loader per process; a failing load is retried on the next call."""
    memo = _Once(load)
    with _MEMOS_LOCK:
        _MEMOS.append(memo)  # type: ignore[arg-type]
    return memo


def reset_settings() -> None:
    """Forget every :func:`once` memo, so the next call reads the environment again."""
    with _MEMOS_LOCK:
        memos = list(_MEMOS)
    for memo in memos:
        memo.reset()
