"""How rollouts advance, halt and recover: :class:`RolloutPolicy`, loaded from YAML.

``config/canary.yaml`` (``ROLLOUT_CONFIG``)::

    stages: [10, 50, 100]       # candidate percent per stage; 100 completes the rollout
    stage_min: 5m               # a stage advances only after this long (rollback: any time)
    stage_max_window: 1h        # the gate compares at most this far back into a stage
    breaker_open_max: 2m        # a breaker open longer than this halts the rollout
    heartbeat_stale: 3m         # instances silent for longer are not asked about breakers
    recovery_windows: 3         # healthy monitor runs in a row before recovery is declared
    comparison:                 # shared.canary.compare.ComparisonPolicy
      min_samples: 50
      alpha: 0.05
      latency_tolerance: 0.2
      error_rate_tolerance: 0.01

Every problem of the file is collected into one :class:`CanaryConfigError` naming the field,
the value and what is allowed. Durations are seconds in Python (``5m`` or ``300`` in YAML).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Final

import yaml

from shared.canary.compare import ComparisonPolicy
from shared.canary.errors import CanaryConfigError

DEFAULT_STAGES: Final[tuple[int, ...]] = (10, 50, 100)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600}
_DURATIONS: Final = {
    "stage_min": "stage_min_s",
    "stage_max_window": "stage_max_window_s",
    "breaker_open_max": "breaker_open_max_s",
    "heartbeat_stale": "heartbeat_stale_s",
}
_KEYS: Final = {"stages", "recovery_windows", "comparison", *_DURATIONS}


def check_stages(stages: Sequence[int]) -> tuple[int, ...]:
    """Strictly increasing integer percents in (0, 100] ending at 100."""
    out = tuple(stages)
    if (
        not out
        or any(isinstance(s, bool) or not isinstance(s, int) or not 0 < s <= 100 for s in out)
        or any(a >= b for a, b in itertools.pairwise(out))
        or out[-1] != 100
    ):
        raise CanaryConfigError(
            f"stages must be strictly increasing integer percents in (0, 100] ending at 100, "
            f"like {list(DEFAULT_STAGES)}; got {list(out)!r}"
        )
    return out


@dataclass(frozen=True, slots=True)
class RolloutPolicy:
    """The gate's rules; seconds throughout. Validated on construction."""

    stages: tuple[int, ...] = DEFAULT_STAGES
    stage_min_s: float = 300.0
    stage_max_window_s: float = 3600.0
    breaker_open_max_s: float = 120.0
    heartbeat_stale_s: float = 180.0
    recovery_windows: int = 3
    comparison: ComparisonPolicy = field(default_factory=ComparisonPolicy)

    def __post_init__(self) -> None:
        problems: list[str] = []
        try:
            check_stages(self.stages)
        except CanaryConfigError as exc:
            problems.append(str(exc))
        for name in _DURATIONS.values():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                problems.append(f"{name} must be a number of seconds >= 0, got {value!r}")
        if self.stage_max_window_s <= 0:
            problems.append(f"stage_max_window_s must be > 0, got {self.stage_max_window_s!r}")
        if isinstance(self.recovery_windows, bool) or not (
            isinstance(self.recovery_windows, int) and 1 <= self.recovery_windows <= 1000
        ):
            problems.append(
                f"recovery_windows must be an integer from 1 to 1000, got {self.recovery_windows!r}"
            )
        if problems:
            raise CanaryConfigError("; ".join(problems))

    def next_stage(self, percent: int) -> int | None:
        """The first stage above ``percent``; None at or beyond the last one."""
        return next((s for s in self.stages if s > percent), None)


def parse_duration(value: object) -> float:
    """``90``, ``90s``, ``5m`` or ``1h`` as seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value[-1:] in _UNITS:
        return float(value[:-1]) * _UNITS[value[-1]]
    raise ValueError("not a duration")


def policy_from_mapping(raw: Mapping[str, Any], where: str = "rollout policy") -> RolloutPolicy:
    """A policy from a parsed YAML mapping; one CanaryConfigError listing every problem."""
    problems: list[str] = []
    for key in raw:
        if key not in _KEYS:
            problems.append(f"{where}: unknown field {key!r}; allowed: {', '.join(sorted(_KEYS))}")
    kwargs: dict[str, Any] = {}
    for key, attr in _DURATIONS.items():
        if key in raw:
            try:
                kwargs[attr] = parse_duration(raw[key])
            except ValueError:
                problems.append(f"{where}: {key} must be seconds or like 90s, 5m, 1h; "
                                f"got {raw[key]!r}")  # fmt: skip
    if "stages" in raw:
        stages = raw["stages"]
        kwargs["stages"] = tuple(stages) if isinstance(stages, list) else stages
    if "recovery_windows" in raw:
        kwargs["recovery_windows"] = raw["recovery_windows"]
    comparison = raw.get("comparison", {})
    allowed = tuple(f.name for f in fields(ComparisonPolicy))
    if not isinstance(comparison, Mapping) or not set(comparison) <= set(allowed):
        problems.append(f"{where}: comparison must be a mapping of {', '.join(allowed)}; "
                        f"got {comparison!r}")  # fmt: skip
    else:
        try:
            kwargs["comparison"] = ComparisonPolicy(**comparison)
        except (CanaryConfigError, TypeError) as exc:
            problems.append(f"{where}: comparison: {exc}")
    try:
        policy = RolloutPolicy(**kwargs)
    except (CanaryConfigError, TypeError) as exc:
        problems.append(f"{where}: {exc}")
    if problems:
        raise CanaryConfigError("; ".join(problems))
    return policy


def load_policy(path: str | Path) -> RolloutPolicy:
    """The policy in the YAML file at ``path``."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CanaryConfigError(f"{path}: cannot read the rollout policy: {exc}") from exc
    if not isinstance(document, Mapping):
        raise CanaryConfigError(f"{path}: expected a mapping of policy fields")
    return policy_from_mapping(document, str(path))
