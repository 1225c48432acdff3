"""What a circuit is built with: every parameter once, with its default, validated on creation.

``Circuit(4, 8.0, name="dep", window_size=20)`` and ``breaker("dep", fail_max=4, ...)`` both pass
their arguments here. An invalid configuration raises
:class:`~shared.resilience.errors.ConfigError` listing every problem, each naming the field, the
value given and what is allowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass
from typing import Any

from shared.resilience.circuit.storage import STATES, BreakerStorage, State
from shared.resilience.clock import Clock
from shared.resilience.errors import ConfigError

__all__ = ["CircuitConfig", "ExcludeRule", "build_config"]

#: An exception type (matched with ``isinstance``) or a predicate on the exception.
ExcludeRule = type[BaseException] | Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True)
class CircuitConfig:
    """The parameters of one circuit (times in seconds, rate thresholds in percent, 0-100].

    ``fail_max``: consecutive failures that open it (None: only the rate rules apply).
    ``reset_timeout``: how long it stays open before admitting probes.
    ``exclude``: exception types or predicates that never count as failures (any iterable;
    stored as a tuple); ``exclude_business_errors`` adds
    :func:`~shared.resilience.transient.is_business_error`.
    ``success_threshold``: probe successes that close it again.
    ``failure_rate_threshold`` / ``slow_call_rate_threshold``: open when that share of the last
    ``window_size`` calls (once there are ``minimum_calls``) failed / took longer than
    ``slow_call_duration``. ``half_open_max_calls``: probes running at once.
    ``storage``: where the state lives (None: a :class:`MemoryStorage` of its own);
    ``fallback_state``: what the circuit acts as while that storage fails, retried every
    ``storage_retry_interval``. ``clock``: the time source (None: the system clock).
    """

    fail_max: int | None = 4
    reset_timeout: float = 8.0
    _: KW_ONLY
    exclude: tuple[ExcludeRule, ...] = ()
    exclude_business_errors: bool = True
    success_threshold: int = 1
    failure_rate_threshold: float | None = None
    slow_call_rate_threshold: float | None = None
    slow_call_duration: float | None = None
    window_size: int = 100
    minimum_calls: int = 10
    half_open_max_calls: int = 1
    storage: BreakerStorage | None = None
    fallback_state: State = "closed"
    storage_retry_interval: float = 5.0
    clock: Clock | None = None

    def __post_init__(self) -> None:
        rules: Any = self.exclude
        if not isinstance(rules, tuple) and _iterable(rules):
            object.__setattr__(self, "exclude", tuple(rules))
        problems = list(_problems(self))
        if problems:
            raise ConfigError("; ".join(problems))

    @property
    def counts_rates(self) -> bool:
        """True when a rate rule is set (the circuit then keeps a sliding window)."""
        return self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None

    @property
    def busy_retry_after(self) -> float:
        """The ``retry_after`` of a refusal while every half-open probe slot is taken."""
        return min(1.0, self.reset_timeout)

    def replaced(self, **options: Any) -> CircuitConfig:
        """This configuration with ``options`` changed (unknown names: ConfigError)."""
        _check_names(options)
        return dataclasses.replace(self, **options)

    def differences(self, other: CircuitConfig) -> list[str]:
        """``field=other's value (existing: this one's)`` for every field that differs."""
        return [
            f"{name}={getattr(other, name)!r} (existing: {getattr(self, name)!r})"
            for name in _FIELDS
            if getattr(other, name) != getattr(self, name)
        ]


_FIELDS = tuple(f.name for f in dataclasses.fields(CircuitConfig))


def build_config(name: str, *args: Any, **options: Any) -> CircuitConfig:
    """The configuration of circuit ``name``; a ConfigError names the circuit and every problem."""
    try:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name={name!r}: must be a non-empty string")
        _check_names(options)
        return CircuitConfig(*args, **options)
    except ConfigError as exc:
        raise ConfigError(f"circuit {name!r}: {exc}") from None


def _check_names(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)}; valid: {', '.join(sorted(_FIELDS))}"
        )


def _iterable(value: object) -> bool:
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return not isinstance(value, str | bytes)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _problems(c: CircuitConfig) -> Iterator[str]:
    """Every problem of ``c``, each naming the field, the value and what is allowed."""
    if c.fail_max is not None and (not _is_int(c.fail_max) or c.fail_max < 1):
        yield f"fail_max={c.fail_max!r}: must be an int >= 1, or None"
    if c.fail_max is None and not c.counts_rates:
        yield "fail_max=None needs failure_rate_threshold or slow_call_rate_threshold"
    for label in ("reset_timeout", "storage_retry_interval"):
        value = getattr(c, label)
        if not _is_number(value) or value <= 0:
            yield f"{label}={value!r}: must be > 0 seconds"
    for label in ("success_threshold", "window_size", "minimum_calls", "half_open_max_calls"):
        value = getattr(c, label)
        if not _is_int(value) or value < 1:
            yield f"{label}={value!r}: must be an int >= 1"
    for label in ("failure_rate_threshold", "slow_call_rate_threshold"):
        rate = getattr(c, label)
        if rate is not None and (not _is_number(rate) or not 0 < rate <= 100):
            yield f"{label}={rate!r}: must be a percentage in (0, 100], or None"
    if (c.slow_call_rate_threshold is None) != (c.slow_call_duration is None):
        yield (
            f"slow_call_rate_threshold={c.slow_call_rate_threshold!r} and "
            f"slow_call_duration={c.slow_call_duration!r}: they go together (both or neither)"
        )
    duration = c.slow_call_duration
    if duration is not None and (not _is_number(duration) or duration <= 0):
        yield f"slow_call_duration={duration!r}: must be > 0 seconds, or None"
    if c.fallback_state not in STATES:
        yield f"fallback_state={c.fallback_state!r}: must be one of {sorted(STATES)}"
    flag: object = c.exclude_business_errors
    if not isinstance(flag, bool):
        yield f"exclude_business_errors={flag!r}: must be True or False"
    storage: object = c.storage  # checked at run time: callers may not be type-checked
    if storage is not None and not isinstance(storage, BreakerStorage):
        yield (
            f"storage={storage!r}: storage must be a MemoryStorage or RedisStorage "
            f"(a BreakerStorage), got {type(storage).__name__}"
        )
    yield from _exclude_problems(c.exclude)


def _exclude_problems(exclude: object) -> Iterator[str]:
    if not isinstance(exclude, tuple):
        yield f"exclude={exclude!r}: must be an iterable of exception types and predicates"
        return
    for rule in exclude:
        if isinstance(rule, type):
            if not issubclass(rule, BaseException):
                yield f"exclude: {rule.__name__} is not an exception type"
        elif not callable(rule):
            yield f"exclude: {rule!r} is neither an exception type nor a predicate"
