"""The JSON formatter, the PII filter and setup_logging, read back as parsed JSON lines."""

from __future__ import annotations

import datetime
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from shared.obs.logging import (
    CloudLoggingFormatter,
    PiiFilter,
    setup_logging,
    teardown_logging,
    use_function,
)
from shared.obs.trace import ObsError, TraceContext, use_trace
from shared.resilience.events import BreakerStateChanged, LoggingHook
from shared.settings import SettingsError

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
log = logging.getLogger("tests.obs.logging")


@pytest.fixture
def stream(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """Structured logging into a fresh buffer; the root logger is restored afterwards."""
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    monkeypatch.delenv("GCP_PROJECT", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    root = logging.getLogger()
    level = root.level
    teardown_logging()
    buffer = io.StringIO()
    setup_logging("DEBUG", function="fn_test", stream=buffer)
    yield buffer
    teardown_logging()
    root.setLevel(level)


def entries(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def only_entry(buffer: io.StringIO) -> dict[str, Any]:
    (entry,) = entries(buffer)
    return entry


def test_plain_message(stream: io.StringIO) -> None:
    log.info("hello")
    line = stream.getvalue()
    assert line.count("\n") == 1
    entry = only_entry(stream)
    assert entry["severity"] == "INFO"
    assert entry["message"] == "hello"
    assert entry["logger"] == "tests.obs.logging"
    assert entry["time"].endswith("Z")
    moment = datetime.datetime.fromisoformat(entry["time"])
    now = datetime.datetime.now(tz=datetime.UTC)
    assert abs((now - moment).total_seconds()) < 60
    assert entry["logging.googleapis.com/labels"] == {"function": "fn_test"}
    location = entry["logging.googleapis.com/sourceLocation"]
    assert location["file"] == __file__
    assert location["function"] == "test_plain_message"
    assert isinstance(location["line"], int)
    assert "logging.googleapis.com/trace" not in entry
    assert "stack_trace" not in entry


@pytest.mark.parametrize(
    ("level", "severity"),
    [
        (logging.DEBUG, "DEBUG"),
        (logging.INFO, "INFO"),
        (logging.WARNING, "WARNING"),
        (logging.ERROR, "ERROR"),
        (logging.CRITICAL, "CRITICAL"),
    ],
)
def test_severity(stream: io.StringIO, level: int, severity: str) -> None:
    log.log(level, "x")
    assert only_entry(stream)["severity"] == severity


def test_message_with_args_is_formatted_then_masked(stream: io.StringIO) -> None:
    log.warning("user %s has %d items, phone %s", "kim@example.com", 3, "010-1234-5678")
    assert only_entry(stream)["message"] == "user [EMAIL] has 3 items, phone [PHONE]"


def test_masking_applies_to_non_string_args(stream: io.StringIO) -> None:
    log.info("payload %s", {"to": "kim@example.com"})
    assert only_entry(stream)["message"] == "payload {'to': '[EMAIL]'}"


def test_bad_format_args_do_not_raise(stream: io.StringIO) -> None:
    log.info("count %d", "kim@example.com")
    message = only_entry(stream)["message"]
    assert "count %d" in message
    assert "[EMAIL]" in message
    assert "kim@example.com" not in message


def test_json_fields_are_merged_masked_and_cannot_override_the_entry(
    stream: io.StringIO,
) -> None:
    log.info(
        "breaker open",
        extra={
            "json_fields": {
                "event": "breaker.state_change",
                "name": "redis",
                "reason": "failed for kim@example.com",
                "api_key": "sk-ant-api03-abcdefghijkl",
                "nested": {"phones": ["010-1234-5678"]},
                "severity": "DEBUG",
                "message": "overridden?",
            }
        },
    )
    entry = only_entry(stream)
    assert entry["severity"] == "INFO"
    assert entry["message"] == "breaker open"
    assert entry["event"] == "breaker.state_change"
    assert entry["name"] == "redis"
    assert entry["reason"] == "failed for [EMAIL]"
    assert entry["api_key"] == "[REDACTED]"
    assert entry["nested"] == {"phones": ["[PHONE]"]}


def test_plain_extra_fields_are_included_and_masked(stream: io.StringIO) -> None:
    log.info("signup", extra={"customer": "kim@example.com", "attempt": 2, "obj": object()})
    entry = only_entry(stream)
    assert entry["customer"] == "[EMAIL]"
    assert entry["attempt"] == 2
    assert entry["obj"].startswith("<object object at")


def test_circular_fields_are_truncated(stream: io.StringIO) -> None:
    loop: dict[str, Any] = {"email": "kim@example.com"}
    loop["self"] = loop
    log.info("loop", extra={"json_fields": {"loop": loop}})
    entry = only_entry(stream)
    assert entry["loop"]["email"] == "[EMAIL]"
    assert "[TRUNCATED]" in stream.getvalue()


def test_unserialisable_fields_fall_back_to_masked_repr(stream: io.StringIO) -> None:
    log.info("tuple keys", extra={"json_fields": {"pairs": {("a", 1): "kim@example.com"}}})
    entry = only_entry(stream)
    assert entry["message"] == "tuple keys"
    assert entry["pairs"] == "{('a', 1): '[EMAIL]'}"
    assert "kim@example.com" not in stream.getvalue()


def test_resilience_logging_hook_output(stream: io.StringIO) -> None:
    LoggingHook()(
        BreakerStateChanged(name="redis", old_state="closed", new_state="open", reason="a@b.io")
    )
    entry = only_entry(stream)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "breaker.state_change redis"
    assert entry["logger"] == "shared.resilience"
    assert entry["event"] == "breaker.state_change"
    assert (entry["old_state"], entry["new_state"], entry["reason"]) == (
        "closed",
        "open",
        "[EMAIL]",
    )


def test_exception_goes_to_stack_trace_masked(stream: io.StringIO) -> None:
    try:
        raise ValueError("bad key sk-ant-api03-abcdefghijkl for kim@example.com")
    except ValueError:
        log.exception("call failed for %s", "lee@example.com")
    entry = only_entry(stream)
    assert entry["severity"] == "ERROR"
    assert entry["message"] == "call failed for [EMAIL]"
    trace = entry["stack_trace"]
    assert trace.startswith("Traceback (most recent call last):")
    assert "ValueError: bad key [API_KEY] for [EMAIL]" in trace
    assert "test_exception_goes_to_stack_trace_masked" in trace
    assert entry["serviceContext"] == {"service": "fn_test"}
    raw = stream.getvalue()
    assert "sk-ant" not in raw
    assert "example.com" not in raw


def test_stack_info_is_masked(stream: io.StringIO) -> None:
    log.info("where %s", "kim@example.com", stack_info=True)
    entry = only_entry(stream)
    assert "test_stack_info_is_masked" in entry["stack_info"]


def test_trace_fields_come_from_the_current_trace(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    with use_trace(TraceContext(TRACE, SPAN, True)):
        log.info("no project")
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo")
        setup_logging("DEBUG")  # the project is read at set-up, once per instance
        log.info("with project")
    log.info("outside")
    bare, full, outside = entries(stream)
    assert bare["logging.googleapis.com/trace"] == TRACE
    assert full["logging.googleapis.com/trace"] == f"projects/demo/traces/{TRACE}"
    assert full["logging.googleapis.com/spanId"] == SPAN
    assert full["logging.googleapis.com/trace_sampled"] is True
    assert "logging.googleapis.com/trace" not in outside


@pytest.mark.parametrize(
    "headers",
    [
        {"traceparent": f"00-{TRACE}-{SPAN}-01"},
        {"X-Cloud-Trace-Context": f"{TRACE}/{int(SPAN, 16)};o=1"},
    ],
)
def test_trace_fields_from_either_header_format(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    monkeypatch.setenv("GCP_PROJECT", "legacy")
    setup_logging("DEBUG")
    with use_trace(TraceContext.from_headers(headers)):
        log.info("traced")
    entry = only_entry(stream)
    assert entry["logging.googleapis.com/trace"] == f"projects/legacy/traces/{TRACE}"
    assert entry["logging.googleapis.com/spanId"] == SPAN
    assert entry["logging.googleapis.com/trace_sampled"] is True


def test_use_function_overrides_the_label(stream: io.StringIO) -> None:
    with use_function("other_fn"):
        log.info("a")
    log.info("b")
    a, b = entries(stream)
    assert a["logging.googleapis.com/labels"] == {"function": "other_fn"}
    assert b["logging.googleapis.com/labels"] == {"function": "fn_test"}


def test_setup_is_idempotent(stream: io.StringIO) -> None:
    setup_logging("INFO")
    setup_logging("INFO", function="renamed")
    log.info("once")
    entry = only_entry(stream)
    assert entry["logging.googleapis.com/labels"] == {"function": "renamed"}
    assert sum(isinstance(f, PiiFilter) for f in logging.getLogger().filters) == 1


def test_level_comes_from_log_level_at_call_time(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "warning")
    setup_logging()
    assert logging.getLogger().level == logging.WARNING
    log.info("dropped")
    assert entries(stream) == []
    monkeypatch.delenv("LOG_LEVEL")
    setup_logging()
    assert logging.getLogger().level == logging.INFO


def test_invalid_log_level_env_is_a_settings_error_naming_it(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(SettingsError) as caught:
        setup_logging()
    (problem,) = caught.value.problems
    assert (problem.name, problem.value) == ("LOG_LEVEL", "LOUD")
    assert "DEBUG, INFO, WARNING, ERROR, CRITICAL" in problem.allowed


def test_a_record_claiming_to_be_masked_is_masked_all_the_same(stream: io.StringIO) -> None:
    # The request log used to skip the filter with this flag; no caller can skip it now.
    log.info(
        "to %s",
        "kim@example.com",
        extra={"_obs_pii_masked": True, "json_fields": {"who": "lee@example.com"}},
    )
    entry = only_entry(stream)
    assert entry["message"] == "to [EMAIL]"
    assert entry["who"] == "[EMAIL]"
    assert "example.com" not in stream.getvalue()


def test_invalid_explicit_level_lists_valid_levels(stream: io.StringIO) -> None:
    with pytest.raises(ObsError, match="DEBUG, INFO, WARNING, ERROR, CRITICAL"):
        setup_logging("LOUD")


def test_default_stream_is_stdout_at_emit_time(
    stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    teardown_logging()
    setup_logging("INFO")
    log.info("to stdout %s", "kim@example.com")
    out = capsys.readouterr().out
    assert json.loads(out)["message"] == "to stdout [EMAIL]"


def test_formatter_masks_records_that_skipped_the_filter() -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "to %s", ("kim@example.com",), None, func="f"
    )
    entry = json.loads(CloudLoggingFormatter("fn").format(record))
    assert entry["message"] == "to [EMAIL]"
    assert entry["logging.googleapis.com/labels"] == {"function": "fn"}


def test_filter_masks_for_every_handler(caplog: pytest.LogCaptureFixture) -> None:
    handler_log = logging.getLogger("tests.obs.filter")
    handler_log.addFilter(PiiFilter())
    try:
        with caplog.at_level(logging.INFO, logger="tests.obs.filter"):
            handler_log.info("mail %s", "kim@example.com", extra={"who": "lee@example.com"})
    finally:
        handler_log.filters.clear()
    (record,) = caplog.records
    assert record.getMessage() == "mail [EMAIL]"
    assert record.__dict__["who"] == "[EMAIL]"


def test_import_is_light_and_reads_no_environment() -> None:
    code = (
        "import logging, sys\n"
        "import shared.obs\n"
        "assert 'flask' not in sys.modules, 'flask imported eagerly'\n"
        "assert not logging.getLogger().handlers, 'handlers installed at import'\n"
        "from shared.obs import observed, json_error\n"
        "assert 'flask' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"LOG_LEVEL": "bogus"})
