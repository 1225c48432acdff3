"""Request parameters of both chaos functions: defaults, allowed ranges and validation.

Every range here is also stated in ``openapi/chaos.yaml``; a contract test keeps the two equal.
Parameters arrive as a mapping of name to raw value: strings from a query string, or any JSON value
from a request body. Validation happens before anything runs, and an invalid value raises
:class:`~shared.chaos.errors.InvalidParameter` naming the parameter and the allowed range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Final, Literal, TypeAlias, cast

from shared.chaos.errors import InvalidParameter, UnknownUpstream

Mode: TypeAlias = Literal["ok", "drop", "slow", "error"]

DEFAULT_P: Final = 0.2
"""Default probability of an injected error."""
DEFAULT_D_MS: Final = 300
"""Default base delay in milliseconds; the wait is uniform in [d, 2d]."""
DEFAULT_MAX_DELAY_MS: Final = 10_000
"""Default cap on ``d`` and ``slow_ms`` (ms), so a ``2d`` wait stays inside the function timeout."""
INJECTABLE_STATUSES: Final[tuple[int, ...]] = (429, 500, 502, 503, 504)
DEFAULT_STATUS: Final = 500
RETRY_AFTER_STATUSES: Final = frozenset({429, 503})
"""Injected statuses that carry a ``Retry-After`` header."""
DEFAULT_RETRY_AFTER_S: Final = 1
MAX_RETRY_AFTER_S: Final = 3600
MAX_SEED: Final = 2**63 - 1

MODES: Final[tuple[Mode, ...]] = ("ok", "drop", "slow", "error")
DEFAULT_MODE: Final[Mode] = "ok"
EXPERIMENT_MODES: Final[tuple[Mode, ...]] = ("drop", "slow", "error")
"""Modes an experiment may set (``ok`` would be a no-op)."""
DEFAULT_SLOW_MS: Final = 4000
"""Delay of ``slow`` mode in milliseconds, unless ``slow_ms`` says otherwise (capped)."""
MIN_EXPERIMENT_S: Final = 1
MAX_EXPERIMENT_S: Final = 4 * 3600
"""Longest experiment (seconds): a forgotten experiment must end by itself the same day."""
DEFAULT_LIST_LIMIT: Final = 100
MAX_LIST_LIMIT: Final = 500

DELAY_PARAMETERS: Final = ("p", "d", "status", "seed", "retry_after")
PROXY_PARAMETERS: Final = ("mode", "slow_ms")
EXPERIMENT_FIELDS: Final = ("upstream", "mode", "duration_s", "slow_ms", "name")
LIST_PARAMETERS: Final = ("limit",)
STOP_PARAMETERS: Final = ("upstream", "name")
NAME_PATTERN: Final = "[a-z0-9][a-z0-9_-]{0,62}"
"""Experiment and upstream names: lowercase, URL-safe, never starting with ``_``."""
_NAME: Final = re.compile(NAME_PATTERN)

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_MAX_NUMBER_CHARS = 40


@dataclass(frozen=True, slots=True)
class DelayParams:
    """A validated ``chaos_delay`` request. ``d_ms`` in milliseconds, ``retry_after_s`` seconds."""

    p: float = DEFAULT_P
    d_ms: int = DEFAULT_D_MS
    status: int = DEFAULT_STATUS
    seed: int | None = None
    retry_after_s: int = DEFAULT_RETRY_AFTER_S


@dataclass(frozen=True, slots=True)
class ProxyParams:
    """A validated ``chaos_proxy`` mode request. ``slow_ms`` in milliseconds."""

    mode: Mode = DEFAULT_MODE
    slow_ms: int = DEFAULT_SLOW_MS


@dataclass(frozen=True, slots=True)
class ExperimentSpec:
    """A validated request to start an experiment. ``duration_s`` seconds, ``slow_ms`` ms."""

    upstream: str
    mode: Mode
    duration_s: int
    slow_ms: int = DEFAULT_SLOW_MS
    name: str = ""


@dataclass(frozen=True, slots=True)
class StopSelector:
    """Which active experiments a bulk stop ends: those matching every given field (all when
    neither is given)."""

    upstream: str | None = None
    name: str | None = None


def default_slow_ms(max_delay_ms: int) -> int:
    """The ``slow`` delay when none is given: 4 s, or the cap when the cap is lower."""
    return min(DEFAULT_SLOW_MS, max_delay_ms)


def parse_delay_params(values: Mapping[str, object], *, max_delay_ms: int) -> DelayParams:
    """Validate ``chaos_delay``'s parameters; absent ones take their defaults."""
    _reject_unknown(values, DELAY_PARAMETERS)
    p = parse_probability("p", values["p"]) if "p" in values else DEFAULT_P
    d_ms = parse_integer("d", values["d"], 0, max_delay_ms) if "d" in values else DEFAULT_D_MS
    # The default itself obeys a cap configured below it.
    d_ms = min(d_ms, max_delay_ms)
    status = (
        parse_status("status", values["status"], INJECTABLE_STATUSES)
        if "status" in values
        else DEFAULT_STATUS
    )
    seed = parse_integer("seed", values["seed"], 0, MAX_SEED) if "seed" in values else None
    retry_after_s = (
        parse_integer("retry_after", values["retry_after"], 0, MAX_RETRY_AFTER_S)
        if "retry_after" in values
        else DEFAULT_RETRY_AFTER_S
    )
    return DelayParams(p, d_ms, status, seed, retry_after_s)


def parse_proxy_params(values: Mapping[str, object], *, max_delay_ms: int) -> ProxyParams:
    """Validate ``chaos_proxy``'s mode parameters; ``slow_ms`` matters only in ``slow`` mode."""
    _reject_unknown(values, PROXY_PARAMETERS)
    mode = parse_choice("mode", values["mode"], MODES) if "mode" in values else DEFAULT_MODE
    slow_ms = (
        parse_integer("slow_ms", values["slow_ms"], 0, max_delay_ms)
        if "slow_ms" in values
        else default_slow_ms(max_delay_ms)
    )
    return ProxyParams(cast(Mode, mode), slow_ms)


def parse_experiment_spec(
    values: Mapping[str, object], *, upstreams: Collection[str], max_delay_ms: int
) -> ExperimentSpec:
    """Validate a request to start an experiment against the configured upstream names.

    A well-formed name that is not configured is :class:`UnknownUpstream` (404), as when
    forwarding to it.
    """
    _reject_unknown(values, EXPERIMENT_FIELDS)
    for required in ("upstream", "mode", "duration_s"):
        if required not in values:
            raise InvalidParameter(
                required,
                f"{required} is required",
                allowed=_allowed_for(required, upstreams),
                got=None,
            )
    upstream = parse_name("upstream", values["upstream"])
    if upstream not in upstreams:
        raise UnknownUpstream(upstream, upstreams)
    mode = parse_choice("mode", values["mode"], EXPERIMENT_MODES)
    duration_s = parse_integer(
        "duration_s", values["duration_s"], MIN_EXPERIMENT_S, MAX_EXPERIMENT_S
    )
    slow_ms = default_slow_ms(max_delay_ms)
    if "slow_ms" in values:
        if mode != "slow":
            raise InvalidParameter(
                "slow_ms",
                "slow_ms applies only to mode slow",
                allowed="absent unless mode is slow",
                got=values["slow_ms"],
            )
        slow_ms = parse_integer("slow_ms", values["slow_ms"], 0, max_delay_ms)
    name = parse_name("name", values["name"]) if "name" in values else ""
    return ExperimentSpec(upstream, cast(Mode, mode), duration_s, slow_ms, name)


def parse_stop_selector(values: Mapping[str, object]) -> StopSelector:
    """Validate a bulk stop's ``upstream`` and ``name`` (either, both or neither)."""
    _reject_unknown(values, STOP_PARAMETERS)
    upstream = parse_name("upstream", values["upstream"]) if "upstream" in values else None
    name = parse_name("name", values["name"]) if "name" in values else None
    return StopSelector(upstream, name)


def parse_name(field: str, raw: object) -> str:
    """A name matching :data:`NAME_PATTERN`."""
    if isinstance(raw, str) and _NAME.fullmatch(raw):
        return raw
    raise InvalidParameter(
        field, f"{field} must match {NAME_PATTERN}", allowed=NAME_PATTERN, got=raw
    )


def parse_list_limit(values: Mapping[str, object]) -> int:
    """Validate the experiment list's ``limit``."""
    _reject_unknown(values, LIST_PARAMETERS)
    if "limit" not in values:
        return DEFAULT_LIST_LIMIT
    return parse_integer("limit", values["limit"], 1, MAX_LIST_LIMIT)


def parse_probability(name: str, raw: object) -> float:
    """A finite number in [0, 1] given as a JSON number or a decimal string."""
    value = _number(raw)
    if value is None or not 0.0 <= value <= 1.0:
        raise InvalidParameter(
            name, f"{name} must be a number between 0 and 1", allowed="0.0..1.0", got=raw
        )
    return value


def parse_integer(name: str, raw: object, low: int, high: int) -> int:
    """An integer in [low, high] given as a JSON integer or a decimal string."""
    value = _integer(raw)
    if value is None or not low <= value <= high:
        raise InvalidParameter(
            name,
            f"{name} must be an integer between {low} and {high}",
            allowed=f"{low}..{high}",
            got=raw,
        )
    return value


def parse_choice(name: str, raw: object, choices: tuple[str, ...]) -> str:
    """One of the string ``choices``, exactly (case-sensitive)."""
    if isinstance(raw, str) and raw in choices:
        return raw
    raise _not_one_of(name, raw, choices)


def parse_status(name: str, raw: object, choices: tuple[int, ...]) -> int:
    """One of the integer ``choices``, given as a JSON integer or a decimal string."""
    value = _integer(raw)
    if value is not None and value in choices:
        return value
    raise _not_one_of(name, raw, choices)


def _not_one_of(
    name: str, raw: object, choices: tuple[str, ...] | tuple[int, ...]
) -> InvalidParameter:
    listed = "|".join(str(c) for c in choices)
    return InvalidParameter(
        name, f"{name} must be one of {listed or '(none configured)'}", allowed=listed, got=raw
    )


def _number(raw: object) -> float | None:
    if isinstance(raw, bool):
        return None
    text_ok = isinstance(raw, str) and len(raw) <= _MAX_NUMBER_CHARS and _DECIMAL.fullmatch(raw)
    if not (isinstance(raw, int | float) or text_ok):
        return None
    try:
        value = float(cast(str | int | float, raw))
    except OverflowError:  # a JSON integer beyond any float (e.g. 10**400)
        return None
    return value if math.isfinite(value) else None


def _integer(raw: object) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() else None
    if isinstance(raw, str) and len(raw) <= _MAX_NUMBER_CHARS and _INTEGER.fullmatch(raw):
        return int(raw)
    return None


def _reject_unknown(values: Mapping[str, object], known: tuple[str, ...]) -> None:
    for name in values:
        if name not in known:
            raise InvalidParameter(
                str(name),
                f"unknown parameter {name!r}; known parameters: {', '.join(known)}",
                allowed=", ".join(known),
                got=name,
            )


def _allowed_for(field: str, upstreams: Collection[str]) -> str:
    if field == "upstream":
        return "|".join(sorted(upstreams))
    if field == "mode":
        return "|".join(EXPERIMENT_MODES)
    return f"{MIN_EXPERIMENT_S}..{MAX_EXPERIMENT_S}"
