"""Things made on first use, never at import: a package's names, and per-key values.

:func:`lazy_exports`: a package lists ``name -> submodule`` once; the submodule is imported the
first time one of its names is used (PEP 562), so a function that imports one piece of a package
does not pay for the others' dependencies at cold start.

:class:`Memo`: one value per key (a client per project, a set-up per function) made on the first
use of its key, once even when threads race for it.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Hashable, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

__all__ = ["Memo", "lazy_exports"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def lazy_exports(
    namespace: MutableMapping[str, Any], exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package whose globals are ``namespace``.

    ``exports`` maps each public name to the submodule (relative to the package) defining it.
    A resolved name is stored in ``namespace``, so later lookups cost nothing.
    """
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__


class Memo(Generic[K, V]):
    """Values made by ``make(key)`` on the first use of each key, kept until :meth:`clear`.

    A found value is returned without the lock (a dict read); ``make`` runs under the lock, so a
    key's value is made once even when threads race, and a ``make`` that raises leaves nothing
    behind (the next use tries again).
    """

    def __init__(self, make: Callable[[K], V]) -> None:
        self._make = make
        self._values: dict[K, V] = {}
        self._lock = threading.Lock()

    def __call__(self, key: K) -> V:
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._lock:
            try:
                return self._values[key]
            except KeyError:
                value = self._values[key] = self._make(key)
                return value

    def clear(self) -> None:
        """Forget every value: the next use of a key makes it again."""
        with self._lock:
            self._values.clear()
