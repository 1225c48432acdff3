"""Events every component reports, the hook interface that receives them, and counters.

Components never log directly: they build a frozen event and call :func:`emit`. The default hooks
are a :class:`LoggingHook` (one structured log record per event) and the process-wide
:class:`Metrics` (counters a caller can snapshot). :func:`use_hooks` chooses other hooks for the
current context only (a test, a probe), so it never diverts events emitted elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

logger = logging.getLogger("shared.resilience")


@dataclass(frozen=True, slots=True)
class Event:
    """Base of all events. ``name`` is the component instance (breaker, cache, model, ...)."""

    kind: ClassVar[str] = "event"
    severity: ClassVar[str] = "INFO"
    name: str

    def fields(self) -> dict[str, Any]:
        """The event as a flat, JSON-friendly dict, including its ``kind``."""
        out: dict[str, Any] = {"event": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = repr(value) if isinstance(value, BaseException) else value
        return out


@dataclass(frozen=True, slots=True)
class BreakerStateChanged(Event):
    kind: ClassVar[str] = "breaker.state_change"
    severity: ClassVar[str] = "WARNING"
    old_state: str
    new_state: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BreakerRejected(Event):
    kind: ClassVar[str] = "breaker.rejected"
    retry_after: float


@dataclass(frozen=True, slots=True)
class BreakerStorageFailed(Event):
    kind: ClassVar[str] = "breaker.storage_failed"
    severity: ClassVar[str] = "ERROR"
    error: str
    fallback_state: str


@dataclass(frozen=True, slots=True)
class RetryScheduled(Event):
    kind: ClassVar[str] = "retry.scheduled"
    severity: ClassVar[str] = "WARNING"
    attempt: int
    wait: float
    error: str


@dataclass(frozen=True, slots=True)
class RetryGaveUp(Event):
    kind: ClassVar[str] = "retry.gave_up"
    severity: ClassVar[str] = "ERROR"
    attempts: int
    elapsed: float
    error: str


@dataclass(frozen=True, slots=True)
class FallbackAttempted(Event):
    """One model of a fallback chain answered or failed. ``name`` is the model."""

    kind: ClassVar[str] = "fallback.attempt"
    outcome: Literal["success", "failure", "skipped"]
    position: int
    error: str = ""


@dataclass(frozen=True, slots=True)
class FallbackCompleted(Event):
    """A whole chain finished. ``name`` is the model that answered ('' if none did)."""

    kind: ClassVar[str] = "fallback.completed"
    fallback_used: bool
    attempts: int
    ok: bool


@dataclass(frozen=True, slots=True)
class CacheAccessed(Event):
    kind: ClassVar[str] = "cache.access"
    severity: ClassVar[str] = "DEBUG"
    outcome: Literal["hit", "miss", "stale"]
    key: str = ""


@dataclass(frozen=True, slots=True)
class LimiterWaited(Event):
    kind: ClassVar[str] = "limiter.wait"
    severity: ClassVar[str] = "DEBUG"
    waited: float


@dataclass(frozen=True, slots=True)
class LimiterRejected(Event):
    kind: ClassVar[str] = "limiter.reject"
    retry_after: float


@dataclass(frozen=True, slots=True)
class LimiterStorageFailed(Event):
    """A limiter's shared store failed; ``fallback`` says what limits in the meantime."""

    kind: ClassVar[str] = "limiter.storage_failed"
    severity: ClassVar[str] = "ERROR"
    error: str
    fallback: str


@dataclass(frozen=True, slots=True)
class AdmissionDecided(Event):
    """``name`` is the admission controller; ``plan`` the request's plan."""

    kind: ClassVar[str] = "admission.decision"
    severity: ClassVar[str] = "DEBUG"
    plan: str
    outcome: Literal["admitted", "rejected"]
    waited: float
    reason: str = ""


class Hook(Protocol):
    """Receives every event. Must not raise; must be cheap (called on the caller's thread)."""

    def __call__(self, event: Event) -> None: ...


_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
}


class LoggingHook:
    """Writes each event as one structured log record (fields under ``extra['json_fields']``)."""

    def __init__(self, log: logging.Logger = logger) -> None:
        self._log = log

    def __call__(self, event: Event) -> None:
        level = _LEVELS.get(event.severity, logging.INFO)
        if self._log.isEnabledFor(level):
            self._log.log(
                level, "%s %s", event.kind, event.name, extra={"json_fields": event.fields()}
            )


class Metrics:
    """Thread-safe counters fed by events; :meth:`snapshot` derives the rates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], int] = {}
        self._breaker_states: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        outcome = ""
        if isinstance(event, CacheAccessed | FallbackAttempted):
            outcome = event.outcome
        elif isinstance(event, AdmissionDecided):
            outcome = f"{event.plan}.{event.outcome}"
        elif isinstance(event, FallbackCompleted):
            outcome = "fallback" if event.fallback_used else ("primary" if event.ok else "failed")
        key = (event.kind, event.name, outcome)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            if isinstance(event, BreakerStateChanged):
                self._breaker_states[event.name] = event.new_state

    def count(self, kind: str, name: str | None = None, outcome: str | None = None) -> int:
        """Sum of the counters matching ``kind`` and, when given, ``name`` and ``outcome``."""
        with self._lock:
            return sum(
                v
                for (k, n, o), v in self._counts.items()
                if k == kind and name in (None, n) and outcome in (None, o)
            )

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._breaker_states.clear()

    def snapshot(self) -> dict[str, Any]:
        """Counters and derived rates: cache hit rate, fallback hit rate, open breakers."""
        hits = self.count(CacheAccessed.kind, outcome="hit")
        stale = self.count(CacheAccessed.kind, outcome="stale")
        misses = self.count(CacheAccessed.kind, outcome="miss")
        chains = self.count(FallbackCompleted.kind)
        fallbacks = self.count(FallbackCompleted.kind, outcome="fallback")
        failed = self.count(FallbackCompleted.kind, outcome="failed")
        lookups = hits + stale + misses
        with self._lock:
            open_breakers = sorted(n for n, s in self._breaker_states.items() if s == "open")
            counters = {f"{k}|{n}|{o}": v for (k, n, o), v in sorted(self._counts.items())}
        return {
            "cache": {
                "hits": hits,
                "stale": stale,
                "misses": misses,
                "hit_rate": (hits + stale) / lookups if lookups else None,
            },
            "fallback": {
                "chains": chains,
                "fallback_used": fallbacks,
                "failed": failed,
                "fallback_hit_rate": fallbacks / chains if chains else None,
                "answer_rate": (chains - failed) / chains if chains else None,
            },
            "retry": {
                "scheduled": self.count(RetryScheduled.kind),
                "gave_up": self.count(RetryGaveUp.kind),
            },
            "breakers": {"open": open_breakers, "rejected": self.count(BreakerRejected.kind)},
            "limiter": {
                "waits": self.count(LimiterWaited.kind),
                "rejects": self.count(LimiterRejected.kind),
                "storage_failures": self.count(LimiterStorageFailed.kind),
            },
            "admission": {
                f"{plan}_{outcome}": self.count(AdmissionDecided.kind, outcome=f"{plan}.{outcome}")
                for plan in ("premium", "free")
                for outcome in ("admitted", "rejected")
            },
            "counters": counters,
        }


METRICS = Metrics()


class TelemetryDefault:
    """The default OpenTelemetry hook: spans and metric points for every event.

    Built on the first event (never at import), so a function that emits nothing loads no
    OpenTelemetry; see :mod:`shared.resilience.telemetry`.
    """

    def __init__(self) -> None:
        self._hook: Hook | None = None
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        hook = self._hook
        if hook is None:
            with self._lock:
                if self._hook is None:
                    from shared.resilience.telemetry import TelemetryHook

                    self._hook = TelemetryHook()
                hook = self._hook
        hook(event)


_DEFAULT_HOOKS: tuple[Hook, ...] = (LoggingHook(), METRICS, TelemetryDefault())
_process_hooks: tuple[Hook, ...] = _DEFAULT_HOOKS
# Hooks chosen for one context (a test, a probe, a request): None means "the process's hooks".
# A ContextVar, not a global, so that one caller's use_hooks never diverts another's events.
_context_hooks: ContextVar[tuple[Hook, ...] | None] = ContextVar("resilience_hooks", default=None)


def hooks() -> tuple[Hook, ...]:
    """The hooks that receive events emitted now, in this context."""
    chosen = _context_hooks.get()
    return _process_hooks if chosen is None else chosen


def emit(event: Event) -> None:
    """Send ``event`` to every hook of this context; a failing hook never breaks the caller."""
    chosen = _context_hooks.get()
    for hook in _process_hooks if chosen is None else chosen:
        try:
            hook(event)
        except Exception:  # observability must not take the call down
            logger.exception("resilience hook %r failed", hook)


def set_hooks(new: Sequence[Hook]) -> tuple[Hook, ...]:
    """Install ``new`` as the process's hooks (for every context that chose none); returns the
    previous ones."""
    global _process_hooks
    previous, _process_hooks = _process_hooks, tuple(new)
    return previous


def add_hook(hook: Hook) -> None:
    """Add one more hook to the process's hooks, after the current ones."""
    set_hooks((*_process_hooks, hook))


@contextlib.contextmanager
def use_hooks(*new: Hook) -> Iterator[None]:
    """Within the block, send this context's events only to ``new``; restored after.

    Other threads and tasks keep their hooks. A thread started inside the block begins with an
    empty context (Python 3.11), so it reports to the process's hooks unless it is run with
    :func:`contextvars.copy_context` (``threading.Thread(target=copy_context().run, args=(f,))``).
    """
    token = _context_hooks.set(tuple(new))
    try:
        yield
    finally:
        _context_hooks.reset(token)


def reset_hooks() -> None:
    """Back to the default hooks (structured logging and :data:`METRICS`): the process's, and
    this context's (an unclosed :func:`use_hooks` of an earlier test no longer applies)."""
    set_hooks(_DEFAULT_HOOKS)
    _context_hooks.set(None)


class Recorder:
    """A hook that keeps every event, for tests and experiments."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type[Event]) -> list[Any]:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]
