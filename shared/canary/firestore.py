"""The rollout in Firestore: ``rollout/<name>`` (the seed's ``rollout.percent``) and its journal.

Document fields: ``version``, ``percent``, ``previous_version``, ``halted`` (with
``halt_reason``; Step 64's ``rolloutAdvance`` must not advance a halted rollout),
``rolled_back_version``, ``generation`` (incremented by every change) and ``updated_at``.
Every change is a transaction: read, decide with the same rules as the in-memory target, write.
Decisions are journaled in ``rollout/<name>/decisions``. The client is created on first use.
Every call is bounded by ``timeout_s`` (retries included); driver failures become
:class:`TargetUnavailable`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, Final

from shared.canary.errors import CanaryConfigError, CanaryError, TargetUnavailable
from shared.canary.gate import Decision
from shared.canary.targets import RolloutState, apply_percent, apply_rollback, check_percent

COLLECTION: Final = "rollout"
DECISIONS: Final = "decisions"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


def default_client() -> Any:
    """A Firestore client for the ambient project (``FIRESTORE_EMULATOR_HOST`` is honoured)."""
    from google.cloud import firestore

    return firestore.Client()


class FirestoreRollout:
    """A RolloutTarget and decision journal on the document ``rollout/<name>``."""

    def __init__(
        self,
        name: str,
        client_factory: Callable[[], Any] = default_client,
        *,
        collection: str = COLLECTION,
        timeout_s: float = 10.0,
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise CanaryConfigError(
                f"rollout name must be 1-128 letters, digits, '.', '_' or '-', got {name!r}"
            )
        self.name = name
        self._factory = client_factory
        self._collection = collection
        self._timeout = timeout_s
        self._client: Any = None
        self._lock = threading.Lock()

    # -- RolloutTarget ------------------------------------------------------------------------

    def start(self, version: str, *, percent: int = 0) -> RolloutState:
        """Begin rolling out ``version`` (create the document, or replace a finished rollout).

        The version serving now becomes ``previous_version``. Starting the version that is
        already rolling out changes nothing (a retried call), even when it is halted.
        """
        if not isinstance(version, str) or not version.strip():
            raise CanaryConfigError(f"version must be a non-empty string, got {version!r}")
        check_percent(percent)

        def change(current: RolloutState | None) -> RolloutState | None:
            if current is None:
                return RolloutState(self.name, version, percent)
            if version in (current.version, current.rolled_back_version):
                return None
            return RolloutState(
                self.name,
                version,
                percent,
                previous_version=current.version,
                generation=current.generation + 1,
            )

        return self._transact(change)

    def state(self) -> RolloutState:
        snapshot = self._call(lambda: self._ref().get(**self._bounded()))
        if not snapshot.exists:
            raise CanaryError(f"rollout {self.name!r} does not exist: start it first")
        return _state(self.name, snapshot.to_dict())

    def set_percent(self, percent: int, *, expected_percent: int | None = None) -> RolloutState:
        return self._transact(lambda s: apply_percent(self._existing(s), percent, expected_percent))

    def rollback(self, reason: str) -> RolloutState:
        return self._transact(lambda s: apply_rollback(self._existing(s), reason))

    # -- DecisionJournal ----------------------------------------------------------------------

    def record(self, decision: Decision, state: RolloutState, *, at: float) -> None:
        """Add ``decision`` (with the state it left) to ``rollout/<name>/decisions``."""
        document = {
            **asdict(decision),
            "reasons": list(decision.reasons),
            "breaches": list(decision.breaches),
            "version": state.version,
            "percent_after": state.percent,
            "halted": state.halted,
            "generation": state.generation,
            "at": at,
        }
        self._call(lambda: self._ref().collection(DECISIONS).add(document, timeout=self._timeout))

    def decisions(self) -> list[dict[str, Any]]:
        """The journaled decisions, oldest first."""
        query = self._ref().collection(DECISIONS).order_by("at")
        return [s.to_dict() for s in self._call(lambda: list(query.stream(**self._bounded())))]

    # -- internals ----------------------------------------------------------------------------

    def _existing(self, state: RolloutState | None) -> RolloutState:
        if state is None:
            raise CanaryError(f"rollout {self.name!r} does not exist: start it first")
        return state

    def _transact(
        self, change: Callable[[RolloutState | None], RolloutState | None]
    ) -> RolloutState:
        from google.cloud import firestore

        ref = self._ref()

        @firestore.transactional
        def run(transaction: Any) -> RolloutState:
            snapshot = ref.get(transaction=transaction, **self._bounded())
            current = _state(self.name, snapshot.to_dict()) if snapshot.exists else None
            new = change(current)
            if new is None:
                if current is None:
                    raise CanaryError(f"rollout {self.name!r} does not exist: start it first")
                return current
            transaction.set(ref, {**_document(new), "updated_at": firestore.SERVER_TIMESTAMP})
            return new

        result: RolloutState = self._call(lambda: run(self._db().transaction()))
        return result

    def _ref(self) -> Any:
        return self._db().collection(self._collection).document(self.name)

    def _bounded(self) -> dict[str, Any]:
        from google.api_core.retry import Retry

        return {"retry": Retry(timeout=self._timeout), "timeout": self._timeout}

    def _db(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._call(self._factory)
        return self._client

    def _call(self, call: Callable[[], Any]) -> Any:
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        try:
            return call()
        except (api_exceptions.GoogleAPIError, auth_exceptions.GoogleAuthError, OSError) as exc:
            raise TargetUnavailable(f"rollout store failed: {type(exc).__name__}: {exc}") from exc


def _document(state: RolloutState) -> dict[str, Any]:
    document = asdict(state)
    del document["name"]
    return document


def _state(name: str, document: dict[str, Any] | None) -> RolloutState:
    data = document or {}
    try:
        return RolloutState(
            name=name,
            version=str(data["version"]),
            percent=int(data["percent"]),
            previous_version=data.get("previous_version"),
            halted=bool(data.get("halted", False)),
            halt_reason=str(data.get("halt_reason", "")),
            rolled_back_version=data.get("rolled_back_version"),
            generation=int(data.get("generation", 0)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CanaryError(f"rollout/{name} is malformed ({exc!r}): {data!r}") from exc
