"""Trace context as the rest of the code needs it: a view of the current OpenTelemetry span.

OpenTelemetry owns the trace: its propagators read W3C ``traceparent`` and Google's
``X-Cloud-Trace-Context`` (see :mod:`shared.obs.telemetry`), ``@observed`` makes the request's
server span current, and the ``requests`` instrumentation carries it to dependencies. This module
only turns the current span into the ids that logs, request records and JSON bodies show
(:class:`TraceContext`), and reads headers from a WSGI environ without werkzeug's per-miss
``KeyError`` (:data:`ENVIRON_GETTER`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from shared.obs.errors import ObsError

if TYPE_CHECKING:
    from opentelemetry.context import Context

TRACEPARENT = "traceparent"
CLOUD_TRACE_HEADER = "X-Cloud-Trace-Context"

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


class HeaderSource(Protocol):
    """Read access to request headers: a ``Mapping[str, str]`` or werkzeug ``Headers``."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One span of one trace. ``trace_id`` is 32 lowercase hex, ``span_id`` 16 lowercase hex."""

    trace_id: str
    span_id: str
    sampled: bool = False

    def __post_init__(self) -> None:
        if not _HEX32.fullmatch(self.trace_id) or self.trace_id == _ZERO_TRACE:
            raise ObsError(
                f"trace_id must be 32 lowercase hex digits, not all 0: {self.trace_id!r}"
            )
        if not _HEX16.fullmatch(self.span_id) or self.span_id == _ZERO_SPAN:
            raise ObsError(f"span_id must be 16 lowercase hex digits, not all 0: {self.span_id!r}")

    @classmethod
    def from_headers(cls, headers: HeaderSource | Mapping[str, str]) -> TraceContext:
        """The span the headers name (through the propagators), or a fresh root; never raises."""
        from opentelemetry import trace

        found = cls.of_span(trace.get_current_span(extract_headers(headers)))
        return found if found is not None else cls.fresh()

    @classmethod
    def fresh(cls) -> TraceContext:
        """A new root context with ids from the SDK's generator."""
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        ids = RandomIdGenerator()
        return cls(f"{ids.generate_trace_id():032x}", f"{ids.generate_span_id():016x}")

    @classmethod
    def of_span(cls, span: Any) -> TraceContext | None:
        """The ids of an OpenTelemetry span, or None for an invalid (no-op) one."""
        context = span.get_span_context()
        if not context.is_valid:
            return None
        return cls(
            format(context.trace_id, "032x"),
            format(context.span_id, "016x"),
            context.trace_flags.sampled,
        )

    def to_headers(self) -> dict[str, str]:
        """The propagators' headers naming this span as the parent, for an outgoing request."""
        from opentelemetry import propagate, trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        span = NonRecordingSpan(
            SpanContext(
                int(self.trace_id, 16),
                int(self.span_id, 16),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if self.sampled else 0),
            )
        )
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return headers

    def log_fields(self, project: str | None) -> dict[str, object]:
        """Cloud Logging's special trace fields; without a project the trace is the bare id."""
        trace = f"projects/{project}/traces/{self.trace_id}" if project else self.trace_id
        return {
            "logging.googleapis.com/trace": trace,
            "logging.googleapis.com/spanId": self.span_id,
            "logging.googleapis.com/trace_sampled": self.sampled,
        }


def current_trace() -> TraceContext | None:
    """The ids of the current OpenTelemetry span (the request's, or a child's), if any."""
    from opentelemetry import trace

    return TraceContext.of_span(trace.get_current_span())


class use_trace:
    """Within the ``with`` block, ``ctx`` is the current span (a non-recording one)."""

    __slots__ = ("_ctx", "_token")

    def __init__(self, ctx: TraceContext | None) -> None:
        self._ctx = ctx
        self._token: object = None

    def __enter__(self) -> TraceContext | None:
        from opentelemetry import context, trace
        from opentelemetry.trace import INVALID_SPAN, NonRecordingSpan, SpanContext, TraceFlags

        if self._ctx is None:
            span: Any = INVALID_SPAN
        else:
            span = NonRecordingSpan(
                SpanContext(
                    int(self._ctx.trace_id, 16),
                    int(self._ctx.span_id, 16),
                    is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.SAMPLED if self._ctx.sampled else 0),
                )
            )
        self._token = context.attach(trace.set_span_in_context(span))
        return self._ctx

    def __exit__(self, *exc: object) -> None:
        from opentelemetry import context

        context.detach(self._token)  # type: ignore[arg-type]


def extract_headers(headers: HeaderSource | Mapping[str, str]) -> Context:
    """The OpenTelemetry context the propagation headers carry (case-insensitive names)."""
    from opentelemetry import propagate

    lowered = {k.lower(): v for k, v in headers.items() if isinstance(v, str)}
    return propagate.extract(lowered)


class _EnvironGetter:
    """Reads propagation headers from a WSGI environ (PEP 3333 ``HTTP_*`` names).

    OpenTelemetry's ``Getter`` interface; werkzeug's header view raises and catches a
    ``KeyError`` for each header a request lacks, which is most of them here.
    """

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [k[5:].lower().replace("_", "-") for k in carrier if k.startswith("HTTP_")]


ENVIRON_GETTER = _EnvironGetter()


def extract_environ(environ: Mapping[str, Any]) -> Context:
    """The OpenTelemetry context of a WSGI request's propagation headers."""
    from opentelemetry import propagate

    return propagate.extract(environ, getter=ENVIRON_GETTER)  # type: ignore[arg-type]
