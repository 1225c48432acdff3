"""The fast paths of masking give exactly what the plain rule loop gives.

``mask`` skips texts in which no rule's pre-check passes, pre-checks the digit rules on four
consecutive digits, and memoises short texts. These tests hold it against a reference: the rule
loop as it was before those shortcuts (every rule's pre-check on every text, three digits).
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import re
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.obs import pii
from shared.obs.logging import _rfc3339, setup_logging, teardown_logging
from shared.obs.pii import is_sensitive_key, mask, mask_value


def reference_mask(text: str) -> str:
    """The rule loop without shortcuts."""
    lowered = text.lower()
    has_digits = re.search(r"\d{3}", text) is not None
    for rule in pii._rules():
        if rule.applies(text, lowered, has_digits):
            text = rule.pattern.sub(rule.replacement, text)
    return text


# Pieces that trigger every rule, glued together at random with separators and noise.
PIECES = [
    "kim@example.com", "a@b.io", "@", "010-1234-5678", "01012345678", "010 1234 5678",
    "+82-10-1234-5678", "+1 (555) 123-4567", "+", "02-123-4567", "(031) 123-4567",
    "070-1234-5678", "555-123-4567", "555.123.4567", "900101-1234567", "9001011234567",
    "Authorization: Bearer abcdef123456", "authorization=", "Bearer xyz12345678", "bearer",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig", "eyJ", "api_key=abc123", "apikey: z",
    "password=hunter2", "PassWord", "client_secret", "token", "pwd=1", "sk-ant-api03-abcdefghij",
    "sk-proj-abcDEF1234567890abcdef", "sk-", "AIzaSyA1234567890abcdefghijklmnopqrstuv", "xoxb-",
    "xoxb-1234567890-abc", "ghp_" + "a1B2" * 9, "gh", "AKIAIOSFODNN7EXAMPLE", "ASIA",
    "https://hooks.slack.com/services/T0000/B0000/XXXX", "hooks.slack.com", "123", "1234",
    "12", "2026-11-26", "0.000307s", "GET / 200 0.3ms", "http://localhost/?p=0&d=0",
    "python-requests/2.32.3", "\u212a", "\u017f", "\u0130", "전화", "[PHONE]",
    "\uff11\uff12\uff13\uff14", "\u0661\u0662\u0663\u0664",
]  # fmt: skip
SEPARATORS = ["", " ", "-", ".", "/", "=", ":", "&", "?", ",", "(", ")", '"', "_", "\n"]


@st.composite
def log_texts(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(PIECES), max_size=6))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(parts), max_size=len(parts)))
    noise = draw(st.text(alphabet="0123456789-+.@ ()abkKeyEYJsS:=/_", max_size=12))
    return "".join(p + s for p, s in zip(parts, seps, strict=True)) + noise


@given(log_texts())
@settings(max_examples=600, deadline=None)
def test_mask_equals_the_plain_rule_loop(text: str) -> None:
    assert mask(text) == reference_mask(text)
    assert pii._mask(text) == reference_mask(text)  # uncached path too


@given(st.text(max_size=40))
@settings(max_examples=1000, deadline=None)
def test_mask_equals_the_plain_rule_loop_on_any_text(text: str) -> None:
    assert mask(text) == reference_mask(text)


def test_every_digit_rule_match_holds_four_consecutive_digits() -> None:
    """The premise of the ``\\d{4}`` pre-check, on many candidate strings."""
    rng = random.Random(7)
    alphabet = "0123456789" * 4 + " .-()+"
    digit_rules = [r for r in pii._rules() if r.digits]
    assert len(digit_rules) == 4
    matched = 0
    shapes = [
        "ddd-ddd-dddd",
        "(ddd) ddd-dddd",
        "0dd-dddd-dddd",
        "01d dddd dddd",
        "dddddd-ddddddd",
        "dd-ddd-dddd",
        "(0d) ddd-dddd",
        "dddddd ddddddd",
        "ddd.ddd.dddd",
        "01ddddddddd",
    ]
    for i in range(20_000):
        if i % 2:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(6, 24)))
        else:
            shape = rng.choice(shapes)
            text = "".join(str(rng.randint(0, 9)) if c == "d" else c for c in shape)
        for rule in digit_rules:
            for match in rule.pattern.finditer(text):
                matched += 1
                assert re.search(r"\d{4}", match.group(0)), (rule.pattern.pattern, text)
    assert matched > 1000


def test_no_replacement_creates_a_digit_run() -> None:
    """Replacements hold no digits except those of the match itself (kept as they were)."""
    samples = [text for text, _ in _masked_samples()]
    for text in samples:
        for rule in pii._rules():
            for match in rule.pattern.finditer(text):
                replaced = (
                    match.expand(rule.replacement)
                    if isinstance(rule.replacement, str)
                    else rule.replacement(match)
                )
                if replaced != match.group(0):
                    assert not re.search(r"\d", replaced), (rule.pattern.pattern, replaced)


def _masked_samples() -> list[tuple[str, str]]:
    from tests.obs.test_pii import MASKED

    return MASKED


def test_memoised_results_match_and_long_texts_are_not_memoised() -> None:
    text = "call 010-1234-5678 or kim@example.com"
    assert mask(text) == mask(text) == "call [PHONE] or [EMAIL]"
    long = "x" * pii.CACHE_MAX_CHARS + " kim@example.com"
    before = pii._mask_cached.cache_info().currsize
    assert mask(long).endswith(" [EMAIL]")
    assert pii._mask_cached.cache_info().currsize == before


def test_text_without_triggers_is_returned_as_is() -> None:
    text = "GET /orders 200 0.3ms"
    assert pii._mask(text) is text


def test_str_subclass_is_masked() -> None:
    class Name(str):
        pass

    assert mask(Name("to kim@example.com")) == "to [EMAIL]"


def test_mask_value_fast_types_match_the_general_path() -> None:
    class Sub(dict[str, object]):
        pass

    value = {
        "n": 1, "f": 0.5, "b": True, "none": None, "s": "kim@example.com",
        "nested": Sub({"password": "x", "l": ["010-1234-5678", (1, "a@b.io")]}),
    }  # fmt: skip
    assert mask_value(value) == {
        "n": 1, "f": 0.5, "b": True, "none": None, "s": "[EMAIL]",
        "nested": {"password": "[REDACTED]", "l": ["[PHONE]", (1, "[EMAIL]")]},
    }  # fmt: skip


def test_sensitive_key_memo_answers_like_the_function() -> None:
    for key in ["api_key", "token_count", "X-Api-Key", "trace_id"]:
        assert is_sensitive_key(key) is is_sensitive_key.__wrapped__(key)


# --- timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("epoch", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000000Z"),
        (1764165600.25, "2025-11-26T14:00:00.250000Z"),
        (86400.5, "1970-01-02T00:00:00.500000Z"),
    ],
)
def test_rfc3339_is_utc_with_microseconds(epoch: float, text: str) -> None:
    assert _rfc3339(epoch) == text


# --- the structured handler ---------------------------------------------------------------------


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level = root.level
    teardown_logging()
    buffer = io.StringIO()
    setup_logging("INFO", function="fn_fast", stream=buffer)
    yield buffer
    teardown_logging()
    root.setLevel(level)


def test_handler_writes_whole_masked_lines_from_many_threads(stream: io.StringIO) -> None:
    import threading

    log = logging.getLogger("tests.obs.fast")

    def work(i: int) -> None:
        for j in range(200):
            log.info("thread %d line %d mail %s", i, j, "kim@example.com")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1600
    for line in lines:
        assert json.loads(line)["message"].endswith("mail [EMAIL]")


def test_handler_survives_a_broken_stream(stream: io.StringIO) -> None:
    stream.close()  # writing now raises ValueError: reported by handleError, not raised
    raise_exceptions = logging.raiseExceptions
    logging.raiseExceptions = False
    try:
        logging.getLogger("tests.obs.fast").warning("still fine")
    finally:
        logging.raiseExceptions = raise_exceptions


# --- the request log, masked by the filter like every record -------------------------------------


def test_request_log_is_masked_by_the_filter(
    stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    import functions_framework

    from shared.obs.requests import use_request_sinks

    monkeypatch.delenv("REQUEST_SINK", raising=False)
    monkeypatch.setenv("REQUEST_LOG_SAMPLE_RATE", "1")  # this request's log line, unsampled
    source = os.path.join(os.path.dirname(__file__), "fixtures", "obs_app.py")
    client = functions_framework.create_app("ok", source).test_client()
    with use_request_sinks():
        response = client.get(
            "/u/010-1234-5678?email=kim@example.com&api_key=sk-ant-api03-abcdefghijkl",
            headers={
                "User-Agent": "probe/1.0 (lee@example.com)",
                "Referer": "https://example.com/?token=abc123",
                "X-Forwarded-For": "kim@example.com, 10.0.0.1",
            },
        )
    assert response.status_code == 200
    (entry,) = [
        json.loads(line)
        for line in stream.getvalue().splitlines()
        if json.loads(line)["logger"] == "shared.obs.request"
    ]
    http = entry["httpRequest"]
    assert http["requestUrl"] == "http://localhost/u/[PHONE]?email=[EMAIL]&api_key=[API_KEY]"
    assert http["userAgent"] == "probe/1.0 ([EMAIL])"
    assert http["referer"] == "https://example.com/?token=[TOKEN]"
    assert http["remoteIp"] == "[EMAIL]"
    assert http["requestMethod"] == "GET"
    assert http["protocol"] == "HTTP/1.1"
    assert entry["message"].startswith("GET /u/[PHONE] 200 ")
    assert set(entry) >= {"httpRequest", "function", "injected", "latency_ms", "message"}
    # Nothing left for the generic masking to change, and no key it would redact.
    fields = {k: entry[k] for k in ("httpRequest", "function", "injected", "latency_ms")}
    assert mask_value(fields) == fields
    assert mask(entry["message"]) == entry["message"]
    for key in [*fields, *http]:
        assert not is_sensitive_key(key)
    assert "kim@example.com" not in stream.getvalue()
    assert "010-1234-5678" not in stream.getvalue()
