"""Values derived from the environment, recomputed only when the environment has changed.

Configuration here is read per request, so that a redeploy or a test's ``monkeypatch.setenv`` takes
effect at once. Each ``os.environ`` look-up encodes the name and decodes the value, which adds up to
microseconds per variable on every request. :func:`env_memo` keeps the last result of a function of
the environment together with a copy of ``os.environ``'s underlying mapping, and answers from it
while that mapping compares equal (one C-level dict comparison). Every change made through
``os.environ`` (``setenv``, ``del``, ``update``, pytest's ``monkeypatch``) changes the mapping, so
the next call recomputes; ``os.putenv`` bypasses ``os.environ`` and was never seen by it anyway.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def env_memo(fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` (a function of ``os.environ`` only), remembered until ``os.environ`` changes.

    A call that raises is not remembered: it raises again next time. Without the mapping to
    compare (another Python, ``os.environ`` replaced by a plain dict), ``fn`` runs on every call.
    """
    # [(copy of the environment the result was computed from, result)]; the tuple is replaced as
    # a whole, so threads see either the old pair or the new one.
    last: list[tuple[dict[Any, Any], T] | None] = [None]

    @functools.wraps(fn)
    def memoised() -> T:
        # The mapping behind os.environ (CPython's _Environ._data); looked up per call, as a test
        # may replace os.environ itself.
        data = getattr(os.environ, "_data", None)
        if type(data) is not dict:
            return fn()
        pair = last[0]
        if pair is not None and data == pair[0]:
            return pair[1]
        # Copy before computing: a change made meanwhile makes the copy stale, never the result.
        snapshot = dict(data)
        result = fn()
        last[0] = (snapshot, result)
        return result

    return memoised
