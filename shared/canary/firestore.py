"""The rollout in Firestore: ``rollout/<name>`` (the seed's ``rollout.percent``) and its journal.

Document fields: ``version``, ``percent``, ``previous_version``, ``halted`` (with
``halt_reason``; Step 64's ``rolloutAdvance`` must not advance a halted rollout),
``rolled_back_version``, ``generation`` (incremented by every change) and ``updated_at``.
Every change is a transaction: read, decide with the same rules as the in-memory target, write.
Decisions are journaled in ``rollout/<name>/decisions``. Firestore is reached through
:mod:`shared.gcp.firestore`: the client is created on first use, every call (and each
transaction as a whole) is bounded by ``timeout_s`` with retries included, and driver failures
become :class:`TargetUnavailable`.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final, TypedDict, cast

from shared.canary.errors import CanaryConfigError, CanaryError, TargetUnavailable
from shared.canary.gate import Decision, Verdict
from shared.canary.targets import RolloutState, apply_percent, apply_rollback, check_percent
from shared.gcp import firestore as fs

COLLECTION: Final = "rollout"
DECISIONS: Final = "decisions"
_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")


class RolloutDocument(TypedDict):
    """``rollout/<name>`` as stored (plus ``updated_at``, a server timestamp)."""

    version: str
    percent: int
    previous_version: str | None
    halted: bool
    halt_reason: str
    rolled_back_version: str | None
    generation: int


class DecisionDocument(TypedDict):
    """One entry of ``rollout/<name>/decisions``; ``at`` in epoch seconds."""

    verdict: Verdict
    current_percent: int
    next_percent: int
    reasons: list[str]
    breaches: list[str]
    version: str
    percent_after: int
    halted: bool
    generation: int
    at: float


def default_client() -> Any:
    """The process's Firestore client for the ambient project (emulator honoured)."""
    return fs.client()


class FirestoreRollout:
    """A RolloutTarget and decision journal on the document ``rollout/<name>``."""

    def __init__(
        self,
        name: str,
        client_factory: Callable[[], Any] = default_client,
        *,
        collection: str = COLLECTION,
        timeout_s: float = fs.DEFAULT_TIMEOUT_S,
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
        with _guarded("rollout.state"):
            snapshot = self._ref().get(**fs.bounded(self._timeout))
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
        document: DecisionDocument = {
            "verdict": decision.verdict,
            "current_percent": decision.current_percent,
            "next_percent": decision.next_percent,
            "reasons": list(decision.reasons),
            "breaches": list(decision.breaches),
            "version": state.version,
            "percent_after": state.percent,
            "halted": state.halted,
            "generation": state.generation,
            "at": at,
        }
        with _guarded("rollout.record"):
            self._ref().collection(DECISIONS).add(dict(document), **fs.bounded(self._timeout))

    def decisions(self) -> list[DecisionDocument]:
        """The journaled decisions, oldest first."""
        query = self._ref().collection(DECISIONS).order_by("at")
        with _guarded("rollout.decisions"):
            snapshots = list(query.stream(**fs.bounded(self._timeout)))
        return [cast(DecisionDocument, s.to_dict()) for s in snapshots]

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

        def run(transaction: Any) -> RolloutState:
            snapshot = ref.get(transaction=transaction, **transaction.bounded())
            current = _state(self.name, snapshot.to_dict()) if snapshot.exists else None
            new = change(current)
            if new is None:
                if current is None:
                    raise CanaryError(f"rollout {self.name!r} does not exist: start it first")
                return current
            transaction.set(ref, {**_document(new), "updated_at": firestore.SERVER_TIMESTAMP})
            return new

        with _guarded("rollout.change"):
            return fs.transaction(run, op="rollout.change", db=self._db(), timeout_s=self._timeout)

    def _ref(self) -> Any:
        return self._db().collection(self._collection).document(self.name)

    def _db(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    with _guarded("rollout.client"):
                        self._client = self._factory()
        return self._client


@contextlib.contextmanager
def _guarded(op: str) -> Iterator[None]:
    """``fs.guarded(op)``, its errors raised as the canary's :class:`TargetUnavailable`
    (nothing is known to have changed)."""
    try:
        with fs.guarded(op):
            yield
    except fs.FirestoreError as exc:
        raise TargetUnavailable(f"rollout store failed: {exc}") from exc


def _document(state: RolloutState) -> RolloutDocument:
    return {
        "version": state.version,
        "percent": state.percent,
        "previous_version": state.previous_version,
        "halted": state.halted,
        "halt_reason": state.halt_reason,
        "rolled_back_version": state.rolled_back_version,
        "generation": state.generation,
    }


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
