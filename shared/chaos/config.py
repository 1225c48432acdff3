"""Configuration from environment variables, read per request so a redeploy or a test's
``monkeypatch.setenv`` takes effect at once.

Reading is a handful of dict look-ups; only ``CHAOS_UPSTREAMS`` needs real parsing, and its parse is
cached keyed by the variable's raw text, so changing the value invalidates the cache by itself.

- ``CHAOS_ENABLED``: the kill switch; ``true`` allows fault injection. Off when unset, ``false``
  or anything else (fail safe).
- ``CHAOS_AUTH``: ``firebase`` | ``iam`` | ``none``; defaults to ``firebase`` when deployed and
  ``none`` locally. "Deployed" means ``K_SERVICE`` is set (Cloud Functions and Cloud Run set it;
  functions-framework run locally does not).
- ``CHAOS_MAX_DELAY_MS``: cap on ``d`` and ``slow_ms`` in ms (default 10000).
- ``CHAOS_DROP_HOLD_S``: longest a ``drop`` holds a connection, seconds (default 30; keep it below
  the function timeout).
- ``CHAOS_UPSTREAMS``: forwarding targets, a JSON object or ``name=url,name=url`` (default none).
- ``CHAOS_UPSTREAM_TIMEOUT_S``: read timeout towards an upstream, seconds (default 30).
- ``CHAOS_EXPERIMENT_CACHE_TTL_S``: how long an instance caches an upstream's active experiment,
  seconds (default 2; 0 = look up on every request). It bounds how stale another instance's view
  of a started or stopped experiment can be.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal, TypeAlias
from urllib.parse import urlsplit

from shared.chaos.errors import ConfigurationError
from shared.chaos.params import DEFAULT_MAX_DELAY_MS

AuthMode: TypeAlias = Literal["firebase", "iam", "none"]
AUTH_MODES: Final[tuple[AuthMode, ...]] = ("firebase", "iam", "none")

DEFAULT_DROP_HOLD_S: Final = 30.0
MAX_DROP_HOLD_S: Final = 3600.0
MAX_DELAY_CAP_MS: Final = 1_800_000
DEFAULT_UPSTREAM_TIMEOUT_S: Final = 30.0
DEFAULT_EXPERIMENT_CACHE_TTL_S: Final = 2.0
MAX_EXPERIMENT_CACHE_TTL_S: Final = 60.0

UPSTREAM_NAME: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
"""Upstream names: lowercase, URL-safe, never starting with ``_`` (reserved for our own routes)."""
RESERVED_NAMES: Final = frozenset({"chaos_proxy", "chaos_delay"})


@dataclass(frozen=True, slots=True)
class Upstream:
    """A forwarding target: requests to ``/chaos_proxy/<name>/<path>`` go to ``base_url/<path>``."""

    name: str
    base_url: str


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    """Everything the chaos functions read from the environment, validated."""

    enabled: bool
    disabled_reason: str
    auth: AuthMode
    deployed: bool
    max_delay_ms: int = DEFAULT_MAX_DELAY_MS
    drop_hold_s: float = DEFAULT_DROP_HOLD_S
    upstreams: Mapping[str, Upstream] | None = None
    upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S
    experiment_cache_ttl_s: float = DEFAULT_EXPERIMENT_CACHE_TTL_S

    @property
    def upstream_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.upstreams or {}))


def settings_from_env(environ: Mapping[str, str] | None = None) -> ChaosSettings:
    """Read and validate the configuration; raises :class:`ConfigurationError` on a bad value."""
    env = os.environ if environ is None else environ
    enabled, reason = kill_switch(env)
    deployed = bool(env.get("K_SERVICE"))
    return ChaosSettings(
        enabled=enabled,
        disabled_reason=reason,
        auth=auth_mode(env, deployed=deployed),
        deployed=deployed,
        max_delay_ms=_int_var(env, "CHAOS_MAX_DELAY_MS", DEFAULT_MAX_DELAY_MS, 1, MAX_DELAY_CAP_MS),
        drop_hold_s=_float_var(env, "CHAOS_DROP_HOLD_S", DEFAULT_DROP_HOLD_S, MAX_DROP_HOLD_S),
        upstreams=parse_upstreams(env.get("CHAOS_UPSTREAMS", "")),
        upstream_timeout_s=_float_var(
            env, "CHAOS_UPSTREAM_TIMEOUT_S", DEFAULT_UPSTREAM_TIMEOUT_S, MAX_DROP_HOLD_S
        ),
        experiment_cache_ttl_s=_float_var(
            env,
            "CHAOS_EXPERIMENT_CACHE_TTL_S",
            DEFAULT_EXPERIMENT_CACHE_TTL_S,
            MAX_EXPERIMENT_CACHE_TTL_S,
            allow_zero=True,
        ),
    )


def kill_switch(env: Mapping[str, str]) -> tuple[bool, str]:
    """Whether chaos is on, and when off, why. Anything but ``true``/``1`` is off (fail safe)."""
    raw = env.get("CHAOS_ENABLED")
    if raw is None or raw.strip() == "":
        return False, "chaos is disabled: CHAOS_ENABLED is not set (set it to true to enable)"
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True, ""
    if value in ("false", "0"):
        return False, "chaos is disabled: CHAOS_ENABLED is false"
    return False, f"chaos is disabled: CHAOS_ENABLED={raw[:40]!r} is not one of true, false"


def auth_mode(env: Mapping[str, str], *, deployed: bool) -> AuthMode:
    """``CHAOS_AUTH``; defaults to ``firebase`` when deployed (``K_SERVICE`` set), else ``none``."""
    raw = env.get("CHAOS_AUTH", "").strip().lower()
    if not raw:
        return "firebase" if deployed else "none"
    for mode in AUTH_MODES:
        if raw == mode:
            return mode
    raise ConfigurationError("CHAOS_AUTH", "|".join(AUTH_MODES), raw)


@functools.lru_cache(maxsize=8)
def parse_upstreams(raw: str) -> Mapping[str, Upstream]:
    """Parse ``CHAOS_UPSTREAMS``: a JSON object ``{"name": "url"}`` or ``name=url,name=url``.

    Cached by the raw text: a changed variable is a new key, so it is parsed afresh.
    """
    text = raw.strip()
    pairs: list[tuple[object, object]]
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ConfigurationError("CHAOS_UPSTREAMS", _UPSTREAMS_FORMAT, text) from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError("CHAOS_UPSTREAMS", _UPSTREAMS_FORMAT, text)
        pairs = list(loaded.items())
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigurationError("CHAOS_UPSTREAMS", _UPSTREAMS_FORMAT, item)
            pairs.append((key.strip(), value.strip()))
    upstreams: dict[str, Upstream] = {}
    for name, url in pairs:
        upstream = _upstream(name, url)
        if upstream.name in upstreams:
            raise ConfigurationError("CHAOS_UPSTREAMS", "unique upstream names", upstream.name)
        upstreams[upstream.name] = upstream
    # Read-only: the same parsed mapping is shared by every caller through the cache.
    return MappingProxyType(upstreams)


_UPSTREAMS_FORMAT = 'a JSON object {"name": "http(s)://host[:port][/prefix]"} or name=url,name=url'


def _upstream(name: object, url: object) -> Upstream:
    if not isinstance(name, str) or not UPSTREAM_NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise ConfigurationError(
            "CHAOS_UPSTREAMS",
            "upstream names matching [a-z0-9][a-z0-9_-]* other than "
            + ", ".join(sorted(RESERVED_NAMES)),
            name,
        )
    if not isinstance(url, str):
        raise ConfigurationError("CHAOS_UPSTREAMS", _UPSTREAMS_FORMAT, url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(
            "CHAOS_UPSTREAMS", "http(s)://host[:port][/prefix] URLs without query", url
        )
    return Upstream(name, url.rstrip("/"))


def _int_var(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigurationError(name, f"an integer between {low} and {high}", raw)
    return value


def _float_var(
    env: Mapping[str, str], name: str, default: float, high: float, *, allow_zero: bool = False
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok and value <= high):
        lower = ">= 0" if allow_zero else "> 0"
        raise ConfigurationError(name, f"a number of seconds {lower} and <= {high:g}", raw)
    return value
