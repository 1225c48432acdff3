"""Configuration from environment variables, read once per instance through :mod:`shared.settings`.

A Cloud Function's environment changes only with a redeploy, which starts new instances, so
:func:`settings` reads it on first use and keeps it; tests call ``shared.settings.reset_settings()``
after changing a variable. A bad value fails that first use with a
:class:`~shared.settings.SettingsError` naming every bad variable and its allowed range (handlers
answer it as a 500 ``chaos_misconfigured``).

- ``CHAOS_ENABLED``: the kill switch; ``true`` allows fault injection. Off when unset, ``false``
  or anything else (fail safe: a typo must neither enable chaos nor break stopping experiments).
- ``CHAOS_AUTH``: ``firebase`` | ``iam`` | ``none``; defaults to ``firebase`` when deployed and
  ``none`` locally (with a start-up warning). "Deployed" means ``K_SERVICE`` is set (Cloud
  Functions and Cloud Run set it; functions-framework run locally does not).
- ``CHAOS_MAX_DELAY_MS``: cap on ``d`` and ``slow_ms`` in ms (default 10000).
- ``CHAOS_DROP_HOLD_S``: longest a ``drop`` holds a connection, seconds (default 30; keep it below
  the function timeout).
- ``CHAOS_MAX_HELD_DROPS``: drops held at once per instance (default: half of ``THREADS``, the
  request threads functions-framework starts, default 4 per CPU); past it a drop is refused with
  503 + ``Retry-After``, so the function keeps threads for everyone else, the operator's stop
  included. Must stay below ``THREADS``.
- ``CHAOS_UPSTREAMS``: forwarding targets, a JSON object or ``name=url,name=url`` (default none).
- ``CHAOS_UPSTREAM_TIMEOUT_S``: read timeout towards an upstream, seconds (default 30).
- ``CHAOS_EXPERIMENT_CACHE_TTL_S``: how long an instance caches an upstream's active experiment,
  seconds (default 2; 0 = look up on every request). It bounds how stale another instance's view
  of a started or stopped experiment can be.

When deployed, ``FIREBASE_AUTH_EMULATOR_HOST`` and ``FIRESTORE_EMULATOR_HOST`` must be unset: the
Firebase SDK accepts unsigned tokens from an emulator, so honouring the variable there would let
anyone in.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal, TypeAlias
from urllib.parse import urlsplit

from shared.chaos.params import DEFAULT_MAX_DELAY_MS
from shared.settings import Env, Problem, SettingsError, once

logger = logging.getLogger(__name__)

AuthMode: TypeAlias = Literal["firebase", "iam", "none"]
AUTH_MODES: Final[tuple[AuthMode, ...]] = ("firebase", "iam", "none")

DEFAULT_DROP_HOLD_S: Final = 30.0
MAX_DROP_HOLD_S: Final = 3600.0
MAX_THREADS: Final = 10_000
MAX_DELAY_CAP_MS: Final = 1_800_000
DEFAULT_UPSTREAM_TIMEOUT_S: Final = 30.0
DEFAULT_EXPERIMENT_CACHE_TTL_S: Final = 2.0
MAX_EXPERIMENT_CACHE_TTL_S: Final = 60.0
#: Smallest positive number of seconds a duration setting takes (0 would mean "never wait").
MIN_SECONDS: Final = 0.001
EMULATOR_VARIABLES: Final = ("FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST")

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
    max_held_drops: int = 4
    upstreams: Mapping[str, Upstream] = field(default_factory=lambda: MappingProxyType({}))
    upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S
    experiment_cache_ttl_s: float = DEFAULT_EXPERIMENT_CACHE_TTL_S

    @property
    def upstream_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.upstreams))


@once
def settings() -> ChaosSettings:
    """This instance's settings, read on first use; :class:`SettingsError` if any is bad."""
    loaded = settings_from_env()
    if loaded.auth == "none":
        # Loud on purpose: an instance that checks no caller should never go unnoticed.
        logger.warning(
            "CHAOS_AUTH is none%s: every caller may inject faults and run experiments",
            "" if loaded.deployed else " (the default when K_SERVICE is unset)",
        )
    return loaded


def settings_from_env(environ: Mapping[str, str] | None = None) -> ChaosSettings:
    """Read and validate the configuration; raises :class:`SettingsError` listing every problem."""
    env = Env(environ)
    enabled, reason = kill_switch(env.raw("CHAOS_ENABLED"))
    deployed = env.raw("K_SERVICE") is not None
    auth = env.choice("CHAOS_AUTH", "firebase" if deployed else "none", AUTH_MODES)
    # functions-framework's own default (functions_framework/_http/gunicorn.py).
    threads = env.integer("THREADS", (os.cpu_count() or 1) * 4, low=1, high=MAX_THREADS)
    loaded = ChaosSettings(
        enabled=enabled,
        disabled_reason=reason,
        auth=auth,
        deployed=deployed,
        max_delay_ms=env.integer(
            "CHAOS_MAX_DELAY_MS", DEFAULT_MAX_DELAY_MS, low=1, high=MAX_DELAY_CAP_MS
        ),
        drop_hold_s=env.number(
            "CHAOS_DROP_HOLD_S", DEFAULT_DROP_HOLD_S, low=MIN_SECONDS, high=MAX_DROP_HOLD_S
        ),
        max_held_drops=env.integer("CHAOS_MAX_HELD_DROPS", threads // 2, low=0, high=threads - 1),
        upstreams=env.parse(
            "CHAOS_UPSTREAMS", MappingProxyType({}), parse_upstreams, allowed=UPSTREAMS_FORMAT
        ),
        upstream_timeout_s=env.number(
            "CHAOS_UPSTREAM_TIMEOUT_S",
            DEFAULT_UPSTREAM_TIMEOUT_S,
            low=MIN_SECONDS,
            high=MAX_DROP_HOLD_S,
        ),
        experiment_cache_ttl_s=env.number(
            "CHAOS_EXPERIMENT_CACHE_TTL_S",
            DEFAULT_EXPERIMENT_CACHE_TTL_S,
            low=0.0,
            high=MAX_EXPERIMENT_CACHE_TTL_S,
        ),
    )
    if deployed:
        for name in EMULATOR_VARIABLES:
            value = env.raw(name)
            if value is not None:
                env.problems.append(
                    Problem(name, value[:80], "unset when deployed (K_SERVICE is set)")
                )
    env.check()
    return loaded


def kill_switch(raw: str | None) -> tuple[bool, str]:
    """Whether chaos is on, and when off, why. Anything but ``true``/``1`` is off (fail safe)."""
    if raw is None or raw.strip() == "":
        return False, "chaos is disabled: CHAOS_ENABLED is not set (set it to true to enable)"
    value = raw.strip().lower()
    if value in ("true", "1"):
        return True, ""
    if value in ("false", "0"):
        return False, "chaos is disabled: CHAOS_ENABLED is false"
    return False, f"chaos is disabled: CHAOS_ENABLED={raw[:40]!r} is not one of true, false"


UPSTREAMS_FORMAT: Final = (
    'a JSON object {"name": "http(s)://host[:port][/prefix]"} or name=url,name=url, '
    "names matching [a-z0-9][a-z0-9_-]{0,62} other than chaos_proxy, chaos_delay"
)


def parse_upstreams(raw: str) -> Mapping[str, Upstream]:
    """Parse ``CHAOS_UPSTREAMS``: a JSON object ``{"name": "url"}`` or ``name=url,name=url``.

    Raises ``ValueError`` saying what is wrong; the result is read-only.
    """
    text = raw.strip()
    pairs: list[tuple[object, object]]
    if not text:
        return MappingProxyType({})
    if text.startswith("{"):
        loaded = json.loads(text)  # JSONDecodeError is a ValueError
        if not isinstance(loaded, dict):
            raise ValueError("not a JSON object")
        pairs = list(loaded.items())
    else:
        pairs = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"{item[:40]!r} is not name=url")
            pairs.append((key.strip(), value.strip()))
    upstreams: dict[str, Upstream] = {}
    for name, url in pairs:
        upstream = _upstream(name, url)
        if upstream.name in upstreams:
            raise ValueError(f"upstream {upstream.name!r} is given twice")
        upstreams[upstream.name] = upstream
    return MappingProxyType(upstreams)


def _upstream(name: object, url: object) -> Upstream:
    if not isinstance(name, str) or not UPSTREAM_NAME.fullmatch(name) or name in RESERVED_NAMES:
        raise ValueError(f"bad upstream name {name!r}")
    if not isinstance(url, str):
        raise ValueError(f"the URL of {name!r} is not a string")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"bad URL {url[:80]!r} for {name!r} (http(s)://host[:port][/prefix])")
    return Upstream(name, url.rstrip("/"))


__all__ = [
    "AUTH_MODES",
    "AuthMode",
    "ChaosSettings",
    "SettingsError",
    "Upstream",
    "kill_switch",
    "parse_upstreams",
    "settings",
    "settings_from_env",
]
