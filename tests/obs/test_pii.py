"""PII masking: every category, Korean formats, false positives, nesting, linear time."""

from __future__ import annotations

import datetime
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.obs.pii import is_sensitive_key, mask, mask_value

MASKED = [
    # emails
    ("contact kim.minsu+tag@example.co.kr today", "contact [EMAIL] today"),
    ("<a@b.io>", "<[EMAIL]>"),
    ("user=lee_99@mail.sub.domain.com,", "user=[EMAIL],"),
    # Korean mobile phones
    ("call 010-1234-5678 now", "call [PHONE] now"),
    ("01012345678", "[PHONE]"),
    ("010 1234 5678", "[PHONE]"),
    ("010.1234.5678", "[PHONE]"),
    ("011-123-4567", "[PHONE]"),
    ("phone=01098765432&x=1", "phone=[PHONE]&x=1"),
    ("전화 010-1234-5678 입니다", "전화 [PHONE] 입니다"),
    ("연락처:010-1234-5678", "연락처:[PHONE]"),
    ("연락처010.9876.5432로", "연락처[PHONE]로"),
    # international
    ("+82-10-1234-5678", "[PHONE]"),
    ("+82 10 1234 5678", "[PHONE]"),
    ("+821012345678", "[PHONE]"),
    ("+82-2-123-4567", "[PHONE]"),
    ("+82 (0)10-1234-5678", "[PHONE]"),
    ("+1 (555) 123-4567", "[PHONE]"),
    ("+1-555-123-4567", "[PHONE]"),
    ("+44 20 7946 0958", "[PHONE]"),
    # Korean landlines and internet phones
    ("02-123-4567", "[PHONE]"),
    ("02-1234-5678", "[PHONE]"),
    ("031-123-4567", "[PHONE]"),
    ("(02) 123-4567", "[PHONE]"),
    ("070-1234-5678", "[PHONE]"),
    # North American
    ("(555) 123-4567", "[PHONE]"),
    ("555-123-4567", "[PHONE]"),
    # bearer tokens and Authorization headers
    ("Authorization: Bearer abcdef123456", "Authorization: Bearer [TOKEN]"),
    ("authorization='Basic dXNlcjpwYXNzd29yZA=='", "authorization='Basic [TOKEN]'"),
    ('{"Authorization": "Bearer ya29.a0AfH6SMBx-y_z"}', '{"Authorization": "Bearer [TOKEN]"}'),
    ("sent bearer ya29.a0AfH6SMBxyz to api", "sent bearer [TOKEN] to api"),
    ("Authorization: sometoken123", "Authorization: [TOKEN]"),
    # API keys
    ("key sk-proj-abcDEF1234567890abcdef", "key [API_KEY]"),
    ("sk-1234567890abcdefghijKLMN", "[API_KEY]"),
    ("sk-ant-api03-AbCdEf_123-456xyz", "[API_KEY]"),
    ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "[API_KEY]"),
    ("xoxb-1234567890-0987654321-AbCdEfGhIjKl", "[API_KEY]"),
    ("xoxp-1234-5678-abcdefghij", "[API_KEY]"),
    ("ghp_" + "a1B2" * 9, "[API_KEY]"),
    ("AKIAIOSFODNN7EXAMPLE", "[API_KEY]"),
    ("url https://hooks.slack.com/services/T0000/B0000/XXXXXXXX ok", "url [WEBHOOK] ok"),
    ("?api_key=abc123&q=1", "?api_key=[API_KEY]&q=1"),
    ("apikey: zzz-999", "apikey: [API_KEY]"),
    ('"x-api-key": "abc.def"', '"x-api-key": "[API_KEY]"'),
    ("API-KEY=Z9", "API-KEY=[API_KEY]"),
    # other credential pairs
    ("password=hunter2 user=kim", "password=[SECRET] user=kim"),
    ('{"client_secret": "s3cr3t"}', '{"client_secret": "[SECRET]"}'),
    ("access_token=abc&next=1", "access_token=[TOKEN]&next=1"),
    # JWT
    (
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3 end",
        "jwt [JWT] end",
    ),
    # 주민등록번호
    ("900101-1234567", "[RRN]"),
    ("9001011234567", "[RRN]"),
    ("주민번호 850315-2345678 입니다", "주민번호 [RRN] 입니다"),
    ("rrn=000229-3123456.", "rrn=[RRN]."),
    ("외국인 951231-5123456", "외국인 [RRN]"),
]


@pytest.mark.parametrize(("text", "expected"), MASKED)
def test_masks_each_category(text: str, expected: str) -> None:
    assert mask(text) == expected


NOT_MASKED = [
    "2026-11-26",
    "2026-11-26T14:07:03.123456Z",
    "2026-11-26T14:07:03+09:00",
    "2026/11/26 14:07",
    "1990-2020",
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "12345678901234567890123456789012",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "4bf92f3577b34da6a3ce929d0e0e4736/12398095946311101313;o=1",
    "123e4567-e89b-12d3-a456-426614174000",
    "01012345-6789-1234-5678-901234567890",
    "550e8400-e29b-41d4-a716-446655440000",
    "42",
    "status 503 after 1234 ms",
    "version 1.2.3",
    "python 3.11.4 and v2026.11.26",
    "epoch 1764165600000 and 1764165600",
    "latency 0.123s",
    "remote 192.168.0.1 and 10.0.0.12",
    "p99=123.456 p50=12.5",
    "ratio 0.0101234567",
    "price 1,234,567 won",
    "order #12345678",
    "file_20261126_120000.log",
    "the bearer of bad news",
    "max_tokens=1024 prompt_tokens: 512 token count 12",
    "skip sk- and sk-short",
    "+5% and +100 requests",
    "email me at the office",
    "a@b",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    "[EMAIL] [PHONE] [API_KEY]",
]


@pytest.mark.parametrize("text", NOT_MASKED)
def test_leaves_ordinary_text_alone(text: str) -> None:
    assert mask(text) == text


@given(
    prefix=st.sampled_from(["010", "011", "016", "017", "019"]),
    middle=st.integers(0, 9999),
    last=st.integers(0, 9999),
    sep=st.sampled_from(["-", "", " ", "."]),
    before=st.sampled_from(["", "tel ", "번호:", "(", "phone="]),
)
def test_any_korean_mobile_number_is_masked(
    prefix: str, middle: int, last: int, sep: str, before: str
) -> None:
    number = f"{prefix}{sep}{middle:04d}{sep}{last:04d}"
    assert mask(f"{before}{number} end") == f"{before}[PHONE] end"


@given(
    birth=st.dates(),
    rest=st.integers(1_000_000, 4_999_999),
    hyphen=st.booleans(),
)
def test_any_resident_registration_number_is_masked(
    birth: datetime.date, rest: int, hyphen: bool
) -> None:
    rrn = f"{birth:%y%m%d}{'-' if hyphen else ''}{rest}"
    assert mask(f"주민번호 {rrn} 확인") == "주민번호 [RRN] 확인"


def test_masks_several_items_in_one_text() -> None:
    text = "kim@example.com called 010-1234-5678 with sk-ant-api03-xyzxyzxyzxyz at 2026-11-26"
    assert mask(text) == "[EMAIL] called [PHONE] with [API_KEY] at 2026-11-26"


@given(st.text(alphabet="0123456789-+.@ ()abcdeKLMsk:=/[]_", max_size=60))
@settings(max_examples=300, deadline=None)
def test_mask_is_idempotent(text: str) -> None:
    once = mask(text)
    assert mask(once) == once


ADVERSARIAL = [
    "1" * 60_000,
    "a" * 60_000,
    "a." * 30_000,
    "a@" * 30_000,
    "a@a." * 15_000,
    "+1 " * 20_000,
    "+11 11" * 10_000,
    "-1" * 30_000,
    "010-" * 15_000,
    "eyJa." * 12_000,
    "sk-" * 20_000,
    "Bearer " * 8_000,
    "password=" * 6_000,
    "Authorization: " * 4_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:8]))
def test_masking_is_linear_on_adversarial_input(text: str) -> None:
    started = time.perf_counter()
    mask(text)
    # Quadratic behaviour on 60 kB would take minutes; linear takes milliseconds.
    assert time.perf_counter() - started < 1.0


def test_mask_value_recurses_and_redacts_secret_keys() -> None:
    value = {
        "user": {"email": "kim@example.com", "password": "hunter2", "age": 41},
        "contacts": [("010-1234-5678", 3), {"note": "sk-ant-api03-abcdefghij"}],
        "api_key": 12345,
        "X-Api-Key": "plain",
        "slackWebhookUrl": "https://hooks.slack.com/services/T/B/C",
        "Authorization": "Bearer abcdefghijkl",
        "token_count": 12,
        "prompt_tokens": 512,
        "auth_required": True,
        "refresh_token": None,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }
    assert mask_value(value) == {
        "user": {"email": "[EMAIL]", "password": "[REDACTED]", "age": 41},
        "contacts": [("[PHONE]", 3), {"note": "[API_KEY]"}],
        "api_key": "[REDACTED]",
        "X-Api-Key": "[REDACTED]",
        "slackWebhookUrl": "[REDACTED]",
        "Authorization": "[REDACTED]",
        "token_count": 12,
        "prompt_tokens": 512,
        "auth_required": True,
        "refresh_token": None,
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    }


def test_mask_value_keeps_non_string_scalars_and_does_not_mutate_input() -> None:
    original = {"a": ["kim@example.com"]}
    assert mask_value(original) == {"a": ["[EMAIL]"]}
    assert original == {"a": ["kim@example.com"]}
    assert mask_value(3.5) == 3.5
    assert mask_value(None) is None


@pytest.mark.parametrize(
    ("key", "sensitive"),
    [
        ("password", True),
        ("db_password", True),
        ("secret", True),
        ("clientSecret", True),
        ("access_token", True),
        ("api_key", True),
        ("APIKey", True),
        ("x-api-key", True),
        ("Authorization", True),
        ("slack_webhook_url", True),
        ("SLACK_WEBHOOK_URL", True),
        ("set-cookie", True),
        ("private_key", True),
        ("token_count", False),
        ("max_tokens", False),
        ("password_min_length", False),
        ("token_type", False),
        ("trace_id", False),
        ("keyboard", False),
        ("monkey", False),
        ("", False),
    ],
)
def test_sensitive_keys(key: str, sensitive: bool) -> None:
    assert is_sensitive_key(key) is sensitive


def test_mask_value_truncates_circular_and_very_deep_structures() -> None:
    loop: dict[str, object] = {"email": "kim@example.com"}
    loop["self"] = loop
    masked = mask_value(loop)
    assert isinstance(masked, dict)
    assert masked["email"] == "[EMAIL]"
    depth = 0
    node: object = masked
    while isinstance(node, dict):
        node, depth = node["self"], depth + 1
    assert node == "[TRUNCATED]"
    assert depth == 32
