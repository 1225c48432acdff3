"""Firestore for every store: one lazy client, every call bounded in time, driver errors wrapped.

The client library's default retry deadlines are minutes (300 s for a query stream, 60 s for
beginning or committing a transaction), longer than a function's own timeout: a monitor whose
Firestore is unreachable answered its 503 after ~280 s, when Cloud Scheduler had long given up.
Here every call gets an explicit deadline:

* reads and writes pass :func:`bounded` (retry transient errors, never past ``timeout_s`` in all);
* :func:`transaction` runs a function transactionally under one overall deadline, including the
  begin, commit and rollback calls the library makes on its own;
* :func:`guarded` turns google-api-core, google-auth and socket errors into :class:`Unavailable`,
  and an exhausted transaction (contention) into :class:`Contention`.

The transaction's begin/commit/rollback calls take no retry options in the library's public API,
so the bounded transaction class overrides those three private methods: the only private use of
the library in the project, pinned by ``tests/gcp/test_firestore_adapter.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar

from shared.lazy import Memo

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Contention",
    "FirestoreError",
    "Unavailable",
    "bounded",
    "client",
    "guarded",
    "reset_clients",
    "transaction",
]

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Default bound on one store operation (retries included), seconds.
DEFAULT_TIMEOUT_S: Final = 10.0
_COMMIT_FAILED: Final = "Failed to commit transaction"


class FirestoreError(Exception):
    """Root of this module's errors; ``op`` names the operation that failed."""

    def __init__(self, op: str, message: str) -> None:
        self.op = op
        super().__init__(f"{op}: {message}")


class Unavailable(FirestoreError):
    """Firestore could not be reached, timed out or refused our credentials (answer 503)."""


class Contention(FirestoreError):
    """A transaction kept losing to concurrent writers until its attempts ran out (retryable)."""


def _make_client(key: tuple[str | None, str | None]) -> Any:
    with guarded("firestore.client"):
        from google.cloud import firestore

        return firestore.Client(project=key[0])


_clients: Memo[tuple[str | None, str | None], Any] = Memo(_make_client)


def client(project: str | None = None) -> Any:
    """The process's ``google.cloud.firestore.Client`` for ``project`` (default: ambient).

    Created on first use, never at import; one per project and emulator host, shared by threads
    (the client is thread-safe). ``FIRESTORE_EMULATOR_HOST`` is honoured by the library.
    """
    return _clients((project, os.environ.get("FIRESTORE_EMULATOR_HOST")))


def reset_clients() -> None:
    """Forget every client (tests switch emulators between cases)."""
    _clients.clear()


def bounded(timeout_s: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """``retry=`` and ``timeout=`` call options: transient errors retried, ``timeout_s`` in all."""
    from google.api_core.retry import Retry

    return {"retry": Retry(initial=0.1, maximum=1.0, timeout=timeout_s), "timeout": timeout_s}


@contextlib.contextmanager
def guarded(op: str) -> Iterator[None]:
    """Wrap driver failures raised inside the block into :class:`FirestoreError` subclasses."""
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    try:
        yield
    except FirestoreError:
        raise
    except api_exceptions.Aborted as exc:
        raise Contention(op, f"aborted by a concurrent transaction: {exc}") from exc
    except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, OSError) as exc:
        raise Unavailable(op, f"{type(exc).__name__}: {exc}") from exc
    except ValueError as exc:
        # The library reports a transaction that ran out of attempts as a bare ValueError.
        if str(exc).startswith(_COMMIT_FAILED):
            raise Contention(op, str(exc)) from exc
        raise


def transaction(
    fn: Callable[[Any], T],
    *,
    op: str = "firestore.transaction",
    db: Any = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_attempts: int = 5,
) -> T:
    """Run ``fn(txn)`` in a read-write transaction that ends within ``timeout_s``.

    ``fn`` may run several times (the library retries aborted commits up to ``max_attempts``);
    its reads should pass ``**txn.bounded()`` so they share the deadline. Raises
    :class:`Contention` when the attempts run out, :class:`Unavailable` when Firestore fails or
    the deadline passes; ``fn``'s own exceptions pass through unchanged.
    """
    from google.cloud import firestore

    with guarded(op):
        txn = _new_transaction(db if db is not None else client(), max_attempts, timeout_s)
        result: T = firestore.transactional(fn)(txn)
        return result


def _bounded_transaction_class() -> type[Any]:
    from google.api_core import exceptions as api_exceptions
    from google.cloud.firestore_v1.transaction import Transaction

    class BoundedTransaction(Transaction):
        """A transaction whose own RPCs (begin, commit, rollback) share one deadline."""

        def __init__(self, db: Any, max_attempts: int, timeout_s: float) -> None:
            super().__init__(db, max_attempts=max_attempts)
            self._deadline = time.monotonic() + timeout_s

        def bounded(self) -> dict[str, Any]:
            """Call options for a read inside the transaction: what is left of the deadline."""
            return bounded(self._remaining())

        def _remaining(self) -> float:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise api_exceptions.DeadlineExceeded(  # type: ignore[no-untyped-call]
                    "transaction deadline passed"
                )
            return left

        def _begin(self, retry_id: bytes | None = None) -> None:
            if self.in_progress:
                raise ValueError(f"transaction {self._id!r} already in progress")
            response = self._client._firestore_api.begin_transaction(
                request={
                    "database": self._client._database_string,
                    "options": self._options_protobuf(retry_id),
                },
                metadata=self._client._rpc_metadata,
                **self.bounded(),
            )
            self._id = response.transaction

        def _rollback(self) -> None:
            if not self.in_progress:
                # Begin itself failed: nothing to roll back, and raising here (as the library
                # does) would hide the real error behind a ValueError.
                return
            try:
                # Best effort and short: a transaction left open expires on the server anyway.
                self._client._firestore_api.rollback(
                    request={"database": self._client._database_string, "transaction": self._id},
                    metadata=self._client._rpc_metadata,
                    retry=None,
                    timeout=max(0.5, min(2.0, self._deadline - time.monotonic())),
                )
            except api_exceptions.GoogleAPIError as exc:
                # The library rolls back while handling the error that ended the transaction;
                # raising here would report the rollback ("Can't swap from CLOSED to ACTIVE"
                # once the server has closed it) instead of that error.
                logger.debug("firestore rollback of %r failed: %s", self._id, exc)
            finally:
                self._clean_up()

        def _commit(self) -> list[Any]:
            if not self.in_progress:
                raise ValueError("no transaction in progress to commit")
            response = self._client._firestore_api.commit(
                request={
                    "database": self._client._database_string,
                    "writes": self._write_pbs,
                    "transaction": self._id,
                },
                metadata=self._client._rpc_metadata,
                **self.bounded(),
            )
            self._clean_up()
            self.write_results = list(response.write_results)
            self.commit_time = response.commit_time
            return self.write_results

    return BoundedTransaction


_transaction_class: type[Any] | None = None


def _new_transaction(db: Any, max_attempts: int, timeout_s: float) -> Any:
    """Build a bounded transaction; the class is made on first use (no import-time SDK load)."""
    global _transaction_class
    if _transaction_class is None:
        _transaction_class = _bounded_transaction_class()
    return _transaction_class(db, max_attempts, timeout_s)
