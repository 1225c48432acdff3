"""Masking of personal data and secrets in log text and structured log fields.

Every pattern is precompiled and anchored on a token boundary (a lookbehind that fails inside a run
of letters/digits), so the regex engine abandons a start position after one character and masking
stays linear in the input length. Patterns run in a fixed order: the most specific (webhook URLs,
JWTs, credential pairs) first, so their text is already masked before the generic phone pattern
looks at the digits inside them. Masking is idempotent: ``mask(mask(s)) == mask(s)``.

Speed: most log text (methods, paths, user agents, messages like ``GET / 200 0.3ms``) holds
nothing any rule could match. :func:`mask` first asks two precompiled trigger regexes whether any
rule's pre-check could pass, and returns such text untouched after one scan; results for short
strings are memoised, since the same user agent, function name or URL recurs on every request.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
TOKEN = "[TOKEN]"
JWT = "[JWT]"
API_KEY = "[API_KEY]"
SECRET = "[SECRET]"
WEBHOOK = "[WEBHOOK]"
RRN = "[RRN]"
REDACTED = "[REDACTED]"

# A match may only start where the previous character is not part of the same token.
_START = r"(?<![0-9A-Za-z])"
_END = r"(?![0-9A-Za-z])"

_Replacement = str | Callable[[re.Match[str]], str]


def _digits_between(low: int, high: int, replacement: str) -> Callable[[re.Match[str]], str]:
    """A replacement that masks only matches holding ``low..high`` digits (else leaves them)."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        count = sum(ch.isdigit() for ch in text)
        return replacement if low <= count <= high else text

    return replace


_CREDENTIAL_KEYS = (
    r"api[_-]?key|apikey|x-api-key|access[_-]?key|secret[_-]?key|private[_-]?key"
    r"|client[_-]?secret|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token"
    r"|password|passwd|pwd|secret|token"
)

# Seoul 02, the other areas 031..064, internet phones 070 and personal numbers 050x.
_KR_AREA = r"02|0[3-6][1-5]|070|050\d"


def _credential_marker(key: str) -> str:
    if "token" in key:
        return TOKEN
    return API_KEY if "key" in key else SECRET


@dataclass(frozen=True, slots=True)
class _Spec:
    """A rule as written: its pattern's source, replacement and pre-check (see :class:`_Rule`)."""

    pattern: str
    replacement: _Replacement
    needles: tuple[str, ...] = ()
    lowered: bool = False
    digits: bool = False


@dataclass(frozen=True, slots=True)
class _Rule:
    """A pattern, its replacement, and substrings one of which any match must contain."""

    pattern: re.Pattern[str]
    replacement: _Replacement
    # Cheap pre-check so most rules cost a substring scan, not a regex pass, on ordinary text.
    needles: tuple[str, ...] = ()
    lowered: bool = False  # look for the needles in the lower-cased text
    digits: bool = False  # any match holds four consecutive digits (see _DIGIT_RUN)

    def applies(self, text: str, lowered: str, has_digits: bool) -> bool:
        if self.digits:
            return has_digits
        haystack = lowered if self.lowered else text
        return any(needle in haystack for needle in self.needles)


@functools.cache
def _specs() -> tuple[_Spec, ...]:
    """The rules as written, in order (patterns not yet compiled)."""
    return (
        # Slack incoming webhooks carry their secret in the path.
        _Spec(
            r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+",
            WEBHOOK,
            ("hooks.slack.com",),
        ),
        # Authorization headers: keep the scheme so the log still tells which kind of credential.
        _Spec(
            (
                r"(?i)(?<![0-9A-Za-z])(authorization[\"']?\s*[:=]\s*[\"']?)"
                r"(?:(bearer|basic|token|digest)\s+)?[^\s\"',;]+"
            ),
            lambda m: f"{m.group(1)}{m.group(2) + ' ' if m.group(2) else ''}{TOKEN}",
            ("authorization",),
            lowered=True,
        ),
        _Spec(
            r"(?i)(?<![0-9A-Za-z])(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*",
            rf"\1 {TOKEN}",
            ("bearer",),
            lowered=True,
        ),
        _Spec(
            r"(?<![0-9A-Za-z_\-])eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*",
            JWT,
            ("eyJ",),
        ),
        # key=value / key: value pairs (query strings, config dumps, JSON text).
        _Spec(
            (
                rf"(?i)(?<![0-9A-Za-z])((?:{_CREDENTIAL_KEYS})[\"']?\s*[:=]\s*[\"']?)"
                r"(?!\[[A-Z_]+\])[^\s\"'&,;]+"
            ),
            lambda m: m.group(1) + _credential_marker(m.group(1).lower()),
            ("key", "secret", "token", "pass", "pwd"),
            lowered=True,
        ),
        _Spec(r"(?<![0-9A-Za-z_\-])sk-ant-[A-Za-z0-9_\-]{8,}", API_KEY, ("sk-",)),
        _Spec(
            r"(?<![0-9A-Za-z_\-])sk-(?:proj-|live-|test-)?[A-Za-z0-9_\-]{16,}",
            API_KEY,
            ("sk-",),
        ),
        _Spec(r"(?<![0-9A-Za-z_\-])AIza[0-9A-Za-z_\-]{35}", API_KEY, ("AIza",)),
        _Spec(r"(?<![0-9A-Za-z_\-])xox[abposre]-[A-Za-z0-9\-]{10,}", API_KEY, ("xox",)),
        _Spec(r"(?<![0-9A-Za-z_\-])gh[pousr]_[A-Za-z0-9]{36,}", API_KEY, ("gh",)),
        _Spec(rf"{_START}(?:AKIA|ASIA)[0-9A-Z]{{16}}{_END}", API_KEY, ("AKIA", "ASIA")),
        _Spec(
            (
                r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]{1,64}@"
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9])"
            ),
            EMAIL,
            ("@",),
        ),
        # 주민등록번호: YYMMDD-GNNNNNN with a valid month/day and gender digit 1-8.
        _Spec(
            (
                r"(?<![0-9A-Za-z.\-])\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
                r"(?:-|\s-\s|\s)?[1-8]\d{6}(?![0-9A-Za-z])(?!\.\d)"
            ),
            RRN,
            digits=True,
        ),
        # International: +CC then groups; masked only with a plausible digit count (E.164: <= 15).
        _Spec(
            (
                r"(?<![0-9A-Za-z+])\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}"
                r"(?:[ .\-]?\d{2,5}){1,4}(?![0-9A-Za-z])"
            ),
            _digits_between(8, 15, PHONE),
            ("+",),
        ),
        # Korean mobile: 010-1234-5678, 010 1234 5678, 01012345678.
        _Spec(
            rf"(?<![0-9A-Za-z.\-])01[016789][ .\-]?\d{{3,4}}[ .\-]?\d{{4}}{_END}",
            PHONE,
            digits=True,
        ),
        # Korean landline / internet phone with separators: 02-123-4567, (031) 123-4567, 070-...
        _Spec(
            (
                rf"(?<![0-9A-Za-z.\-])(?:\((?:{_KR_AREA})\)\s?|(?:{_KR_AREA})[ .\-])"
                rf"\d{{3,4}}[ .\-]\d{{4}}{_END}"
            ),
            PHONE,
            digits=True,
        ),
        # North American without country code: (555) 123-4567, 555-123-4567, 555.123.4567.
        _Spec(
            (
                r"(?<![0-9A-Za-z.\-])(?:\(\d{3}\)\s?|\d{3}[.\-])\d{3}[.\-]\d{4}"
                rf"{_END}(?![.\-]\d)"
            ),
            PHONE,
            digits=True,
        ),
    )


@functools.cache
def _rules() -> tuple[_Rule, ...]:
    """The compiled rules, in order; compiled on the first text a trigger finds something in."""
    return tuple(
        _Rule(re.compile(s.pattern), s.replacement, s.needles, s.lowered, s.digits)
        for s in _specs()
    )


# The pre-check of the ``digits=True`` rules. Every match of each of them holds four consecutive
# digits, read off the patterns: the RRN starts with six (``\d{2}`` month ``\d{2}`` day
# ``\d{2}``), and the Korean mobile, Korean landline and North American patterns all end in
# ``\d{4}``. Rules run on the text as earlier rules left it, but no replacement creates a digit
# run: each one puts a bracketed marker (optionally after a digit-free key or scheme taken from the
# match) where the match was, or leaves the match as it was. So a text without four consecutive
# digits never gives a digit rule anything to match; tests/obs/test_pii_fast.py checks both facts.
_DIGIT_RUN = re.compile(r"\d{4}")


@functools.cache
def _triggers() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Two regexes that find nothing in a text exactly when no rule's pre-check passes for it.

    The first looks in the text itself for the case-sensitive needles and for a digit run; the
    second looks in the lower-cased text for the needles of the ``lowered`` rules. These are the
    same substring tests :meth:`_Rule.applies` makes, as one scan each instead of ~17 calls.
    """
    cased: set[str] = set()
    lowered: set[str] = set()
    for spec in _specs():  # the rules' pre-checks, without compiling the rules themselves
        if not spec.digits:
            (lowered if spec.lowered else cased).update(spec.needles)

    def union(needles: set[str]) -> str:
        # Longest first only for readability: any alternative matching is enough for search().
        return "|".join(re.escape(n) for n in sorted(needles, key=lambda n: (-len(n), n)))

    return (
        re.compile(f"{union(cased)}|{_DIGIT_RUN.pattern}"),
        re.compile(union(lowered)),
    )


def _mask(text: str) -> str:
    cased, lowered_needles = _triggers()
    lowered = text.lower()
    if cased.search(text) is None and lowered_needles.search(lowered) is None:
        # No rule's pre-check passes on the original text, so the first rule leaves it as it is,
        # and so on for every later rule: the loop below would return ``text`` unchanged.
        return text
    has_digits = _DIGIT_RUN.search(text) is not None
    for rule in _rules():
        if rule.applies(text, lowered, has_digits):
            text = rule.pattern.sub(rule.replacement, text)
    return text


#: Strings up to this length are memoised (masking is a pure function of the text).
CACHE_MAX_CHARS = 512
_mask_cached = functools.lru_cache(maxsize=4096)(_mask)


def mask(text: str) -> str:
    """``text`` with every recognised personal datum or secret replaced by a ``[KIND]`` marker."""
    if type(text) is str and len(text) <= CACHE_MAX_CHARS:
        return _mask_cached(text)
    return _mask(text)


_SENSITIVE_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "apikey",
        "authorization",
        "webhook",
        "cookie",
        "credential",
        "credentials",
        "privatekey",
        "secretkey",
        "accesskey",
        "signature",
        "auth",
    }
)
_SENSITIVE_PAIRS = frozenset({"apikey", "privatekey", "secretkey", "accesskey", "setcookie"})
# Keys like ``token_count`` or ``password_min_length`` describe a secret without holding one.
_DESCRIPTIVE_WORDS = frozenset(
    {
        "count",
        "counts",
        "total",
        "used",
        "limit",
        "max",
        "min",
        "num",
        "ttl",
        "length",
        "size",
        "budget",
        "type",
        "expires",
        "expiry",
        "required",
    }
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")


@functools.lru_cache(maxsize=1024)
def is_sensitive_key(key: str) -> bool:
    """Whether a mapping key names a secret (``api_key``, ``X-Api-Key``, ``slackWebhookUrl``...).

    Memoised: log records reuse a small set of keys.
    """
    words = [w.lower() for w in _WORD.findall(key)]
    if not words or _DESCRIPTIVE_WORDS.intersection(words):
        return False
    if _SENSITIVE_WORDS.intersection(words):
        return True
    return any(a + b in _SENSITIVE_PAIRS for a, b in itertools.pairwise(words))


MAX_DEPTH = 32
TRUNCATED = "[TRUNCATED]"


def mask_value(value: object) -> object:
    """``value`` with strings masked, recursively through dicts, lists and tuples.

    Values under keys that name a secret (see :func:`is_sensitive_key`) are replaced wholesale by
    ``[REDACTED]``, whatever their type, unless they are ``None`` or a bool. Other objects are
    returned as they are: the formatter masks their ``str()`` when it serialises them. Containers
    nested deeper than ``MAX_DEPTH`` (including circular ones) become ``[TRUNCATED]``.
    """
    return _mask_value(value, MAX_DEPTH)


# Exact types answered without the isinstance() checks against the Mapping ABC below (a miss on an
# ABC costs far more than a type look-up). Subclasses still take the general path.
_SCALARS: frozenset[type] = frozenset({int, float, bool, type(None)})


def _mask_value(value: object, depth: int) -> object:
    if type(value) is str:
        return mask(value)
    if type(value) in _SCALARS:
        return value
    if type(value) is dict and depth > 0:
        return {k: _mask_item(k, v, depth - 1) for k, v in value.items()}
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping | list | tuple) and depth <= 0:
        return TRUNCATED
    if isinstance(value, Mapping):
        return {k: _mask_item(k, v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_value(v, depth - 1) for v in value]
    if isinstance(value, tuple):
        return tuple(_mask_value(v, depth - 1) for v in value)
    return value


def _mask_item(key: object, value: object, depth: int) -> object:
    sensitive = isinstance(key, str) and is_sensitive_key(key)
    if sensitive and value is not None and not isinstance(value, bool):
        return REDACTED
    return _mask_value(value, depth)
