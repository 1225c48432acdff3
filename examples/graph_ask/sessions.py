"""One lazily made ``requests`` session per dependency, pooled for the instance's threads."""

from __future__ import annotations

import threading
from typing import Final

import requests
from requests.adapters import HTTPAdapter

#: Kept-alive connections per host: one per request thread that may call the dependency at once
#: (urllib3's default of 10 would open and drop a connection per call beyond ten).
POOL_SIZE: Final = 64


class LazySession:
    """A ``requests.Session`` made on first use (never at import), shared by every thread."""

    def __init__(self, pool_size: int = POOL_SIZE) -> None:
        self._pool_size = pool_size
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def get(self) -> requests.Session:
        session = self._session
        if session is None:
            with self._lock:
                if self._session is None:
                    made = requests.Session()
                    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_size)
                    made.mount("http://", adapter)
                    made.mount("https://", adapter)
                    self._session = made
                session = self._session
        return session

    def close(self) -> None:
        """Close the session (if any); the next call makes a new one."""
        with self._lock:
            session, self._session = self._session, None
        if session is not None:
            session.close()
