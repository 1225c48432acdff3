"""Structured JSON logging in Cloud Logging's format, with PII masking on every record.

:func:`setup_logging` puts one handler on the root logger that writes one JSON object per line
(Cloud Logging's agent turns the special keys into the entry's severity, trace, span, source
location and labels). Every record is masked by :class:`PiiFilter` before any handler formats it:
the message after ``%``-formatting, ``extra`` fields, ``json_fields`` and the exception text.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
import traceback
from collections.abc import Mapping
from contextvars import ContextVar
from typing import IO, Any

from shared.obs.errors import ObsError
from shared.obs.pii import mask, mask_value
from shared.obs.scoped import scoped
from shared.obs.trace import current_trace
from shared.settings import Env

JSON_FIELDS = "json_fields"
"""The ``extra`` key whose dict is merged into the JSON entry (as google-cloud-logging does)."""

# The record attribute mask_record sets once it has masked a record, so the handler's filter and
# the formatter do not mask it twice. Its value is this private object: no caller can mark a
# record as masked (``extra={"_obs_pii_masked": True}`` is just another field, and masked).
_MASKED_ATTR = "_obs_pii_masked"
_MASKED = object()
_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "taskName",
        JSON_FIELDS,
        _MASKED_ATTR,
    }
)
# Keys of the entry itself; json_fields and extras may not overwrite them.
_RESERVED = frozenset(
    {
        "severity",
        "message",
        "time",
        "stack_trace",
        "logging.googleapis.com/trace",
        "logging.googleapis.com/spanId",
        "logging.googleapis.com/trace_sampled",
        "logging.googleapis.com/sourceLocation",
        "logging.googleapis.com/labels",
    }
)

_function: ContextVar[str | None] = ContextVar("shared_obs_function", default=None)


def use_function(name: str | None) -> scoped[str | None]:
    """Within the ``with`` block, records are labelled ``name`` (overrides setup's function)."""
    return scoped(_function, name)


def _format_exception(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    return ""


def mask_record(record: logging.LogRecord) -> None:
    """Mask ``record`` in place (once): message with its args, extras, exception and stack text.

    The one masking path of every log line: the handler's :class:`PiiFilter` and the formatter
    both call it, whoever built the record.
    """
    if record.__dict__.get(_MASKED_ATTR) is _MASKED:
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 -- bad format args: keep the evidence, masked, instead of losing the record
        message = f"{record.msg!r} % {record.args!r}"
    record.msg, record.args = mask(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = _format_exception(record)
    if record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    for key, value in list(record.__dict__.items()):
        if key == JSON_FIELDS or key not in _RECORD_ATTRS:
            record.__dict__[key] = mask_value(value)
    record.__dict__[_MASKED_ATTR] = _MASKED


class PiiFilter(logging.Filter):
    """Masks personal data and secrets in each record it sees; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


def _severity(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "CRITICAL"
    if levelno >= logging.ERROR:
        return "ERROR"
    if levelno >= logging.WARNING:
        return "WARNING"
    if levelno >= logging.INFO:
        return "INFO"
    return "DEBUG" if levelno >= logging.DEBUG else "DEFAULT"


def _rfc3339(epoch: float) -> str:
    """``epoch`` as RFC 3339 UTC with microseconds, ``2026-11-26T14:07:03.123456Z``."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _json_default(value: object) -> object:
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return [mask_value(v) for v in value]
    return mask(str(value))


# ``json.dumps(entry, default=_json_default, ensure_ascii=False)``, without building an encoder
# per record (the encoder keeps no state between calls).
_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False)


class CloudLoggingFormatter(logging.Formatter):
    """Formats a record as one line of Cloud Logging structured JSON (masked if not yet).

    ``project`` qualifies trace ids (``projects/<project>/traces/<id>``); without one the trace
    field is the bare id.
    """

    def __init__(
        self,
        function: str | None = None,
        labels: Mapping[str, str] | None = None,
        *,
        project: str | None = None,
    ):
        super().__init__()
        self.function = function
        self.labels = dict(labels or {})
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        mask_record(record)
        entry: dict[str, Any] = {
            "severity": _severity(record.levelno),
            "message": record.getMessage(),
            "time": _rfc3339(record.created),
            "logger": record.name,
            "logging.googleapis.com/sourceLocation": {
                "file": record.pathname,
                "line": record.lineno,
                "function": record.funcName,
            },
        }
        function = _function.get() or self.function
        labels = {**self.labels, "function": function} if function else dict(self.labels)
        if labels:
            entry["logging.googleapis.com/labels"] = labels
        trace = current_trace()
        if trace is not None:
            entry.update(trace.log_fields(self.project))
        if record.exc_text:
            entry["stack_trace"] = record.exc_text
            if function:
                # Lets Error Reporting group the error under the function's name.
                entry["serviceContext"] = {"service": function}
        if record.stack_info:
            entry["stack_info"] = record.stack_info
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in _RESERVED:
                entry.setdefault(key, value)
        fields = record.__dict__.get(JSON_FIELDS)
        if isinstance(fields, Mapping):
            entry.update((str(k), v) for k, v in fields.items() if k not in _RESERVED)
        elif fields is not None:
            entry[JSON_FIELDS] = fields
        try:
            return _ENCODER.encode(entry)
        except (TypeError, ValueError):  # e.g. circular structures or non-string keys
            safe = {k: v if k in _RESERVED else mask(repr(v)) for k, v in entry.items()}
            return _ENCODER.encode(safe)


class _StructuredHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to ``stream``, or to whatever ``sys.stdout`` is at emit time when none is given."""

    def __init__(self, stream: IO[str] | None) -> None:
        super().__init__(stream if stream is not None else sys.stdout)
        self.follows_stdout = stream is None

    def use_stream(self, stream: IO[str] | None) -> None:
        self.follows_stdout = stream is None
        self.setStream(stream if stream is not None else sys.stdout)

    def emit(self, record: logging.LogRecord) -> None:
        if self.follows_stdout:
            # Test runners and the Functions runtime may swap sys.stdout after setup.
            self.stream = sys.stdout
        super().emit(record)

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter and format the record outside the handler's lock; hold the lock only to write.

        ``logging.Handler.handle`` holds the lock across filtering, formatting and writing. Under
        many request threads that turns the lock into a queue: its holder gives up the GIL in the
        write, then waits for it back (up to the interpreter's switch interval) while every other
        thread that logs sleeps on the lock. Masking and formatting touch only this record, so
        they need no lock; the write and flush still happen one record at a time, whole lines.
        """
        passed: object = self.filter(record)  # a bool; from Python 3.12 maybe a record
        if not passed:
            return False
        if isinstance(passed, logging.LogRecord):  # a filter replaced the record
            record = passed
        try:
            line = self.format(record) + self.terminator
        except RecursionError:  # as StreamHandler.emit does (issue 36272)
            raise
        except Exception:  # noqa: BLE001 -- as StreamHandler.emit: report, never raise
            self.handleError(record)
            return True
        with self.lock:  # type: ignore[union-attr]
            try:
                if self.follows_stdout:
                    self.stream = sys.stdout
                stream = self.stream
                stream.write(line)
                stream.flush()
            except RecursionError:
                raise
            except Exception:  # noqa: BLE001 -- as StreamHandler.emit: report, never raise
                self.handleError(record)
        return True


_setup_lock = threading.Lock()


def parse_level(level: str | int) -> int:
    """A logging level from a number or a name such as ``"debug"`` or ``"WARNING"``."""
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name.isdigit():
        return int(name)
    if name == "WARN":
        return logging.WARNING
    if name in _LEVEL_NAMES:
        return logging.getLevelNamesMapping()[name]
    raise ObsError(f"unknown log level {level!r}; use one of {', '.join(_LEVEL_NAMES)} or a number")


def setup_logging(
    level: str | int | None = None,
    *,
    function: str | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Install the JSON handler and the PII filter on the root logger; safe to call again.

    Reads, now: ``LOG_LEVEL`` when ``level`` is None (default INFO; a bad value raises
    :class:`shared.settings.SettingsError` naming it) and the project of trace fields
    (:meth:`shared.settings.Env.project`). A later call updates the level and project,
    and the function label and stream when given; it never adds a second handler. Handlers
    installed by others are left alone (they still see masked records for anything logged on the
    root logger itself).
    """
    env = Env()
    if level is None:
        levels = ", ".join(_LEVEL_NAMES)
        resolved = env.parse(
            "LOG_LEVEL", logging.INFO, parse_level, allowed=f"one of {levels} or a number"
        )
    else:
        resolved = parse_level(level)
    project = env.project()
    env.check()
    root = logging.getLogger()
    with _setup_lock:
        handler = next((h for h in root.handlers if isinstance(h, _StructuredHandler)), None)
        if handler is None:
            handler = _StructuredHandler(stream)
            handler.addFilter(PiiFilter())
            handler.setFormatter(CloudLoggingFormatter(function))
            root.addHandler(handler)
        elif stream is not None:
            handler.use_stream(stream)
        if isinstance(handler.formatter, CloudLoggingFormatter):
            handler.formatter.project = project
            if function is not None:
                handler.formatter.function = function
        if not any(isinstance(f, PiiFilter) for f in root.filters):
            root.addFilter(PiiFilter())
        root.setLevel(resolved)


def teardown_logging() -> None:
    """Remove what :func:`setup_logging` installed (for tests and embedding applications)."""
    root = logging.getLogger()
    with _setup_lock:
        for handler in [h for h in root.handlers if isinstance(h, _StructuredHandler)]:
            root.removeHandler(handler)
        for filt in [f for f in root.filters if isinstance(f, PiiFilter)]:
            root.removeFilter(filt)
