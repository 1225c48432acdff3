"""One lazily made ``requests`` session per dependency, shared by the instance's threads.

Made on first use, never at import (cold start); :meth:`LazySession.close` lets the next call
make a new one (tests, and the reset between them).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

import requests
from requests.adapters import HTTPAdapter

__all__ = ["POOL_SIZE", "LazySession", "pooled_session"]

#: Kept-alive connections per host: one per request thread that may call the dependency at once
#: (urllib3's default of 10 would open and drop a connection per call beyond ten).
POOL_SIZE: Final = 64


def pooled_session(pool_size: int = POOL_SIZE) -> requests.Session:
    """A session keeping up to ``pool_size`` connections alive per host (http and https)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class LazySession:
    """A ``requests.Session`` made by ``factory`` on first use, shared by every thread."""

    def __init__(self, factory: Callable[[], requests.Session] = pooled_session) -> None:
        self._factory = factory
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        """The session, made now if this is the first use since creation or :meth:`close`."""
        session = self._session
        if session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._factory()
                session = self._session
        return session

    def close(self) -> None:
        """Close the session (if any); the next call makes a new one."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
