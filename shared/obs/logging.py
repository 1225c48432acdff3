"""Structured JSON logging in Cloud Logging's format, with PII masking on every record.

:func:`setup_logging` puts one handler on the root logger that writes one JSON object per line
(Cloud Logging's agent turns the special keys into the entry's severity, trace, span, source
location and labels). Every record is masked by :class:`PiiFilter` before any handler formats it:
the message after ``%``-formatting, ``extra`` fields, ``json_fields`` and the exception text.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import logging
import math
import os
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import IO, Any

from shared.obs.environ import env_memo
from shared.obs.pii import mask, mask_value
from shared.obs.trace import ObsError, current_trace, project_id

# project_id() as of the current environment, without two os.environ look-ups per record.
_project_id = env_memo(project_id)

JSON_FIELDS = "json_fields"
"""The ``extra`` key whose dict is merged into the JSON entry (as google-cloud-logging does)."""

MASKED_FLAG = "_obs_pii_masked"
"""Set on a record once it is masked; :func:`mask_record` leaves such a record as it is. Code that
builds a record already masked (``extra={MASKED_FLAG: True}``) must mask exactly what
:func:`mask_record` would have: see ``shared.obs.http._log_request``."""
_MASKED_FLAG = MASKED_FLAG
_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_ATTRS = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "taskName",
        JSON_FIELDS,
        _MASKED_FLAG,
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


@contextlib.contextmanager
def use_function(name: str | None) -> Iterator[None]:
    """Within the block, records are labelled with function ``name`` (overrides setup's)."""
    token = _function.set(name)
    try:
        yield
    finally:
        _function.reset(token)


def _format_exception(record: logging.LogRecord) -> str:
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    return ""


def mask_record(record: logging.LogRecord) -> None:
    """Mask ``record`` in place (once): message with its args, extras, exception and stack text."""
    if getattr(record, _MASKED_FLAG, False):
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
    setattr(record, _MASKED_FLAG, True)


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


# The formatted date and time of the last whole second seen: records come in bursts within the
# same second, and only the microseconds differ. One tuple, replaced atomically.
_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _rfc3339(epoch: float) -> str:
    """``epoch`` as RFC 3339 UTC with microseconds, ``2026-11-26T14:07:03.123456Z``.

    The same text as ``datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")``
    with ``Z`` for ``+00:00``, including its rounding (half to even, on the fraction of the second
    scaled to microseconds); the date and time of day are formatted once per second.
    """
    global _last_second
    fraction, whole = math.modf(epoch)
    seconds = int(whole)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        seconds, micros = seconds + 1, micros - 1_000_000
    elif micros < 0:
        seconds, micros = seconds - 1, micros + 1_000_000
    cached, prefix = _last_second
    if cached != seconds:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
        prefix = moment.isoformat(timespec="seconds")[: -len("+00:00")]
        _last_second = (seconds, prefix)
    return f"{prefix}.{micros:06d}Z"


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
    """Formats a record as one line of Cloud Logging structured JSON (masked if not yet)."""

    def __init__(self, function: str | None = None, labels: Mapping[str, str] | None = None):
        super().__init__()
        self.function = function
        self.labels = dict(labels or {})

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
            entry.update(trace.log_fields(_project_id()))
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

    ``level`` defaults to the ``LOG_LEVEL`` environment variable (read now), else INFO. A later
    call updates the level, and the function label and stream when given; it never adds a second
    handler. Handlers installed by others are left alone (they still see masked records for
    anything logged on the root logger itself).
    """
    bad_env: str | None = None
    if level is None:
        env = os.environ.get("LOG_LEVEL", "").strip()
        try:
            resolved = parse_level(env) if env else logging.INFO
        except ObsError:
            resolved, bad_env = logging.INFO, env
    else:
        resolved = parse_level(level)
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
        if function is not None and isinstance(handler.formatter, CloudLoggingFormatter):
            handler.formatter.function = function
        if not any(isinstance(f, PiiFilter) for f in root.filters):
            root.addFilter(PiiFilter())
        root.setLevel(resolved)
    if bad_env is not None:
        logging.getLogger(__name__).warning(
            "LOG_LEVEL=%r is not a level (%s); using INFO", bad_env, ", ".join(_LEVEL_NAMES)
        )


def teardown_logging() -> None:
    """Remove what :func:`setup_logging` installed (for tests and embedding applications)."""
    root = logging.getLogger()
    with _setup_lock:
        for handler in [h for h in root.handlers if isinstance(h, _StructuredHandler)]:
            root.removeHandler(handler)
        for filt in [f for f in root.filters if isinstance(f, PiiFilter)]:
            root.removeFilter(filt)
