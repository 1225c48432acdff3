"""Trace context: parsed from incoming headers, current per request, propagated to dependencies.

Understands W3C ``traceparent`` (``00-<32 hex trace>-<16 hex span>-<2 hex flags>``) and Google's
``X-Cloud-Trace-Context`` (``TRACE_ID/SPAN_ID;o=1`` with a *decimal* span id). Malformed headers are
ignored, never raised on: a request with garbage headers simply starts a fresh trace.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from shared.obs.errors import ObsError
from shared.obs.scoped import scoped

TRACEPARENT = "traceparent"
CLOUD_TRACE_HEADER = "X-Cloud-Trace-Context"

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_TRACEPARENT = re.compile(
    r"\s*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?\s*", re.IGNORECASE
)
_CLOUD_TRACE = re.compile(r"\s*([0-9a-fA-F]{32})(?:/(\d{1,20}))?(?:;o=([0-9]+))?\s*")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_MAX_SPAN = 2**64 - 1


class HeaderSource(Protocol):
    """Read access to request headers: a ``Mapping[str, str]`` or werkzeug ``Headers``."""

    def get(self, key: str, /) -> str | None: ...

    def items(self) -> Iterable[tuple[str, str]]: ...


# Not for secrets: ids only need to be unique, and SystemRandom would cost a syscall per id.
_random = random.Random()


def _new_trace_id() -> str:
    return f"{_random.getrandbits(128) or 1:032x}"


def _new_span_id() -> str:
    return f"{_random.getrandbits(64) or 1:016x}"


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
    def new(cls, *, sampled: bool = False) -> TraceContext:
        """A fresh root context with random ids (both from one draw of 24 random bytes)."""
        ids = _random.randbytes(24).hex()
        trace_id, span_id = ids[:32], ids[32:]
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:  # one chance in 2**64: draw again
            return cls(_new_trace_id(), _new_span_id(), sampled)
        return cls(trace_id, span_id, sampled)

    @classmethod
    def from_headers(cls, headers: HeaderSource, *, case_insensitive: bool = False) -> TraceContext:
        """The context the headers carry (``traceparent`` first), or a fresh one; never raises.

        ``case_insensitive=True`` says that ``headers.get`` already ignores case (werkzeug's
        ``Headers`` and ``EnvironHeaders`` do), so a missing header needs no scan of all items.
        """
        return cls.from_header_values(
            _header(headers, TRACEPARENT, case_insensitive),
            _header(headers, CLOUD_TRACE_HEADER, case_insensitive),
        )

    @classmethod
    def from_header_values(cls, traceparent: object, cloud_trace: object) -> TraceContext:
        """The context of the two headers' values, ``traceparent`` first (None: absent), or a
        fresh one; never raises. For callers that have the values already, such as a WSGI
        environ's ``HTTP_TRACEPARENT`` and ``HTTP_X_CLOUD_TRACE_CONTEXT``."""
        parsed = _parse_traceparent(traceparent if isinstance(traceparent, str) else None)
        if parsed is None:
            parsed = _parse_cloud_trace(cloud_trace if isinstance(cloud_trace, str) else None)
        return parsed if parsed is not None else cls.new()

    def child(self) -> TraceContext:
        """A new span of the same trace, e.g. for an outgoing call."""
        return TraceContext(self.trace_id, _new_span_id(), self.sampled)

    def to_headers(self) -> dict[str, str]:
        """Both propagation headers, for requests to dependencies."""
        flag = 1 if self.sampled else 0
        return {
            TRACEPARENT: f"00-{self.trace_id}-{self.span_id}-{flag:02x}",
            CLOUD_TRACE_HEADER: f"{self.trace_id}/{int(self.span_id, 16)};o={flag}",
        }

    def log_fields(self, project: str | None) -> dict[str, object]:
        """Cloud Logging's special trace fields; without a project the trace is the bare id."""
        trace = f"projects/{project}/traces/{self.trace_id}" if project else self.trace_id
        return {
            "logging.googleapis.com/trace": trace,
            "logging.googleapis.com/spanId": self.span_id,
            "logging.googleapis.com/trace_sampled": self.sampled,
        }


def _header(headers: HeaderSource, name: str, case_insensitive: bool = False) -> str | None:
    """Case-insensitive lookup that works for plain dicts as well as werkzeug ``Headers``."""
    value = headers.get(name)
    if value is None and not case_insensitive:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value if isinstance(value, str) else None


def _parse_traceparent(value: str | None) -> TraceContext | None:
    if not value or len(value) > 512:
        return None
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    version = version.lower()
    # Version ff is forbidden; version 00 has exactly four fields; later versions may add more.
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = trace_id.lower(), span_id.lower()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def _parse_cloud_trace(value: str | None) -> TraceContext | None:
    if not value or len(value) > 256:
        return None
    match = _CLOUD_TRACE.fullmatch(value)
    if match is None:
        return None
    trace_id, span, option = match.groups()
    trace_id = trace_id.lower()
    if trace_id == _ZERO_TRACE:
        return None
    span_number = int(span) if span else 0
    # A missing or out-of-range span keeps the trace: the logs still group under it.
    span_id = f"{span_number:016x}" if 0 < span_number <= _MAX_SPAN else _new_span_id()
    sampled = option is not None and bool(int(option) & 1)
    return TraceContext(trace_id, span_id, sampled)


_current: ContextVar[TraceContext | None] = ContextVar("shared_obs_trace", default=None)


def current_trace() -> TraceContext | None:
    """The context made current by :func:`use_trace` in this thread/task, if any."""
    return _current.get()


def use_trace(ctx: TraceContext | None) -> scoped[TraceContext | None]:
    """Within the ``with`` block, ``ctx`` is the current trace (logged on every record)."""
    return scoped(_current, ctx)


def project_id() -> str | None:
    """The Google Cloud project from ``GOOGLE_CLOUD_PROJECT`` or ``GCP_PROJECT``, read per call."""
    return os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCP_PROJECT") or None
