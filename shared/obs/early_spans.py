"""A span processor that holds the spans ending before the exporters are ready, then hands them on.

:mod:`shared.obs.telemetry` installs the tracer provider on a function's first request but
attaches the exporters from a background thread (their imports cost a few hundred milliseconds
that a cold start should not wait for). The first requests of a cold instance end in that gap;
without this holder their spans were dropped, and those are the requests a cold-start
investigation needs. Held spans are bounded (``limit``); beyond it they are counted and dropped.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import SpanProcessor

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span

__all__ = ["EarlySpans"]


class EarlySpans(SpanProcessor):
    """Forwards to the processor given to :meth:`attach`; until then, keeps ended spans."""

    def __init__(self, limit: int = 2048) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._held: list[ReadableSpan] = []
        self._target: SpanProcessor | None = None
        self._attached = False
        self.dropped = 0

    def attach(self, target: SpanProcessor | None) -> None:
        """Send the held spans to ``target`` and forward every later one (None: drop them)."""
        with self._lock:
            held, self._held = self._held, []
            self._target, self._attached = target, True
        if target is not None:
            for span in held:
                target.on_end(span)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        target = self._target
        if target is not None:
            target.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        target = self._target
        if target is None:
            with self._lock:
                if not self._attached:
                    if len(self._held) < self._limit:
                        self._held.append(span)
                    else:
                        self.dropped += 1
                    return
                target = self._target
            if target is None:
                return
        target.on_end(span)

    def shutdown(self) -> None:
        if self._target is not None:
            self._target.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True if self._target is None else self._target.force_flush(timeout_millis)
