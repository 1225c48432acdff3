"""The SLO file: YAML validated up front into typed, frozen objects.

The shape follows google/slo-generator where it fits: each SLO has a ``name``, a ``backend``
(the SLI source, chosen by name from ``backends``), a ``method`` and a ``goal``, plus the
backend-specific ``service_level_indicator`` block. Every problem in a file is reported at once,
each naming the SLO, the field and what is allowed.

Check a file from the shell: ``python -m shared.slo.config check config/slos.yaml``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, cast

from shared.slo.backends import BACKEND_TYPES, SliQuery, backend_module
from shared.slo.durations import format_duration, parse_duration
from shared.slo.errors import ConfigInvalid

Method = Literal["good_bad_ratio", "latency_percentile"]
Severity = Literal["page", "ticket"]

METHODS: tuple[Method, ...] = ("good_bad_ratio", "latency_percentile")
PERCENTILES = (50, 90, 95, 99)
SEVERITIES: tuple[Severity, ...] = ("page", "ticket")
DEFAULT_WINDOW_S = 300
MIN_WINDOW_S = 60
#: Consecutive windows without data before an SLO alerts "no data" (30 minutes at 5m).
DEFAULT_NO_DATA_ALERT_AFTER = 6
MAX_NO_DATA_ALERT_AFTER = 2016  # a week of 5-minute windows

#: The Google SRE Workbook's multiwindow, multi-burn-rate policy (chapter 5, table 5-8).
SRE_WORKBOOK_POLICY_YAML: tuple[dict[str, Any], ...] = (
    {"name": "fast-burn", "severity": "page", "burn_rate": 14.4,
     "long_window": "1h", "short_window": "5m"},
    {"name": "slow-burn", "severity": "page", "burn_rate": 6,
     "long_window": "6h", "short_window": "30m"},
    {"name": "budget-leak", "severity": "ticket", "burn_rate": 1,
     "long_window": "3d", "short_window": "6h"},
)  # fmt: skip

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")
_TOP_KEYS = {"backends", "error_budget_policies", "window", "slos"}
_SLO_KEYS = {
    "name",
    "service",
    "sli",
    "description",
    "backend",
    "method",
    "goal",
    "percentile",
    "threshold_ms",
    "window",
    "error_budget_policy",
    "no_data_alert_after",
    "service_level_indicator",
}
_RULE_KEYS = {"name", "severity", "burn_rate", "long_window", "short_window"}


@dataclass(frozen=True, slots=True)
class BurnRateRule:
    """Alert when the burn rate exceeds ``burn_rate`` over both windows (seconds)."""

    name: str
    severity: Severity
    burn_rate: float
    long_window_s: int
    short_window_s: int

    def describe(self) -> str:
        long_, short = format_duration(self.long_window_s), format_duration(self.short_window_s)
        return f"{self.burn_rate:g}x over {long_} confirmed by {short}"


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A named SLI source: its provider ``type`` and that provider's options."""

    name: str
    type: str
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Slo:
    """One objective on one SLI, with its error budget and burn-rate alerting rules.

    For ``good_bad_ratio`` the SLO holds while the good fraction is above ``goal``; for
    ``latency_percentile`` while the ``percentile``-th latency is below ``threshold_ms`` (then
    ``goal`` is ``percentile / 100``: that share of requests must be faster than the threshold).
    ``window_s`` is the evaluation window in seconds. After ``no_data_alert_after`` consecutive
    runs whose window had no data, one "no data" alert goes out (0: never), so a broken filter
    or a silent service does not pass for a healthy one.
    """

    name: str
    service: str
    sli: str
    backend: str
    method: Method
    goal: float
    window_s: int
    rules: tuple[BurnRateRule, ...]
    query: SliQuery
    description: str = ""
    percentile: int | None = None
    threshold_ms: float | None = None
    no_data_alert_after: int = DEFAULT_NO_DATA_ALERT_AFTER

    @property
    def budget(self) -> Fraction:
        """The error budget: the fraction of events allowed to be bad."""
        return 1 - Fraction(str(self.goal))

    @property
    def windows_s(self) -> tuple[int, ...]:
        """Every window (seconds) this SLO is measured over in a run, deduplicated, ascending."""
        found = {self.window_s}
        for rule in self.rules:
            found.update((rule.long_window_s, rule.short_window_s))
        return tuple(sorted(found))

    def objective_text(self) -> str:
        """The objective as people say it: ``p95 < 900 ms`` or ``good ratio > 99%``."""
        if self.method == "latency_percentile":
            return f"p{self.percentile} < {self.threshold_ms:g} ms"
        return f"good ratio > {_percent(self.goal)}"


@dataclass(frozen=True, slots=True)
class MonitorConfig:
    """A whole validated SLO file."""

    slos: tuple[Slo, ...]
    backends: Mapping[str, BackendSpec]
    window_s: int = DEFAULT_WINDOW_S
    source: str = "<memory>"

    def slo(self, name: str) -> Slo:
        for slo in self.slos:
            if slo.name == name:
                return slo
        raise KeyError(f"no SLO named {name!r}; known: {', '.join(s.name for s in self.slos)}")


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate the SLO file at ``path``; raises :class:`ConfigInvalid`."""
    import yaml

    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigInvalid(where, [f"cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigInvalid(where, [f"not valid YAML: {exc}"]) from exc
    return parse_config(data, source=where)


def parse_config(data: object, *, source: str = "<memory>") -> MonitorConfig:
    """Validate an already-parsed SLO document; raises :class:`ConfigInvalid` listing problems."""
    problems: list[str] = []
    if not isinstance(data, Mapping):
        raise ConfigInvalid(
            source, [f"the file must be a mapping with an 'slos' list; got {_kind(data)}"]
        )
    _unknown_keys(data, _TOP_KEYS, "top level", problems)
    window_s = (
        _duration(data.get("window", DEFAULT_WINDOW_S), "window", problems) or DEFAULT_WINDOW_S
    )
    backends = _parse_backends(data.get("backends"), problems)
    policies = _parse_policies(data.get("error_budget_policies"), problems)
    slos = _parse_slos(data.get("slos"), backends, policies, window_s, problems)
    if problems:
        raise ConfigInvalid(source, problems)
    return MonitorConfig(slos=slos, backends=backends, window_s=window_s, source=source)


def _parse_backends(raw: object, problems: list[str]) -> dict[str, BackendSpec]:
    if raw is None:
        problems.append(
            f"backends: required; a mapping of name to options, types: {_list(BACKEND_TYPES)}"
        )
        return {}
    if not isinstance(raw, Mapping):
        problems.append(f"backends: must be a mapping of name to options; got {_kind(raw)}")
        return {}
    out: dict[str, BackendSpec] = {}
    for name, options in raw.items():
        where = f"backends.{name}"
        options = {} if options is None else options
        if not isinstance(options, Mapping):
            problems.append(f"{where}: must be a mapping of options; got {_kind(options)}")
            continue
        type_ = str(options.get("type", name))
        if type_ not in BACKEND_TYPES:
            problems.append(
                f"{where}.type: unknown backend {type_!r}; allowed: {_list(BACKEND_TYPES)}"
            )
            continue
        rest = {str(k): v for k, v in options.items() if k != "type"}
        allowed = backend_module(type_).OPTIONS
        for key, value in rest.items():
            if key not in allowed:
                problems.append(
                    f"{where}.{key}: unknown option; allowed: {_list(allowed) or 'none'}"
                )
            elif not isinstance(value, str) or not value:
                problems.append(f"{where}.{key}: must be a non-empty string; got {value!r}")
        out[str(name)] = BackendSpec(str(name), type_, {k: str(v) for k, v in rest.items()})
    return out


def _parse_policies(raw: object, problems: list[str]) -> dict[str, tuple[BurnRateRule, ...]]:
    policies: dict[str, tuple[BurnRateRule, ...]] = {}
    default = _parse_rules(list(SRE_WORKBOOK_POLICY_YAML), "built-in default policy", problems)
    if raw is None:
        return {"default": default}
    if not isinstance(raw, Mapping):
        problems.append(
            f"error_budget_policies: must be a mapping of name to rule list; got {_kind(raw)}"
        )
        return {"default": default}
    for name, rules in raw.items():
        policies[str(name)] = _parse_rules(rules, f"error_budget_policies.{name}", problems)
    policies.setdefault("default", default)
    return policies


def _parse_rules(raw: object, where: str, problems: list[str]) -> tuple[BurnRateRule, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(f"{where}: must be a list of rules ({_list(_RULE_KEYS)}); got {_kind(raw)}")
        return ()
    rules = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{at}: must be a mapping with {_list(_RULE_KEYS)}; got {_kind(item)}")
            continue
        _unknown_keys(item, _RULE_KEYS, at, problems)
        before = len(problems)
        severity = item.get("severity")
        if severity not in SEVERITIES:
            problems.append(f"{at}.severity: must be one of {_list(SEVERITIES)}; got {severity!r}")
        rate = _number(item.get("burn_rate"), f"{at}.burn_rate", problems, low=0, low_open=True)
        long_s = _duration(item.get("long_window"), f"{at}.long_window", problems)
        short_s = _duration(item.get("short_window"), f"{at}.short_window", problems)
        if long_s and short_s and short_s >= long_s:
            problems.append(
                f"{at}.short_window: must be shorter than long_window "
                f"({format_duration(long_s)}); got {format_duration(short_s)}"
            )
        if len(problems) == before and rate is not None and long_s and short_s:
            rules.append(
                BurnRateRule(
                    name=str(item.get("name") or f"rule-{i}"),
                    severity=cast(Severity, severity),
                    burn_rate=rate,
                    long_window_s=long_s,
                    short_window_s=short_s,
                )
            )
    return tuple(rules)


def _parse_slos(
    raw: object,
    backends: Mapping[str, BackendSpec],
    policies: Mapping[str, tuple[BurnRateRule, ...]],
    window_s: int,
    problems: list[str],
) -> tuple[Slo, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"slos: must be a non-empty list of SLOs; got {_kind(raw)}")
        return ()
    slos: list[Slo] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, Mapping) else None
        at = f"slos[{i}]" + (f" ({name})" if isinstance(name, str) else "")
        if not isinstance(item, Mapping):
            problems.append(f"{at}: must be a mapping; got {_kind(item)}")
            continue
        slo = _parse_slo(item, at, backends, policies, window_s, problems)
        if slo is None:
            continue
        if slo.name in seen:
            problems.append(f"{at}.name: duplicate SLO name {slo.name!r}; names must be unique")
            continue
        seen.add(slo.name)
        slos.append(slo)
    return tuple(slos)


def _parse_slo(
    item: Mapping[str, Any],
    at: str,
    backends: Mapping[str, BackendSpec],
    policies: Mapping[str, tuple[BurnRateRule, ...]],
    default_window_s: int,
    problems: list[str],
) -> Slo | None:
    before = len(problems)
    _unknown_keys(item, _SLO_KEYS, at, problems)
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(
            f"{at}.name: required; letters, digits, '_', '-', '.', starting with a letter "
            f"(it names Firestore documents); got {name!r}"
        )
    method = item.get("method")
    if method not in METHODS:
        problems.append(f"{at}.method: must be one of {_list(METHODS)}; got {method!r}")
    backend_name = item.get("backend")
    backend = backends.get(str(backend_name)) if backend_name is not None else None
    if backend is None:
        problems.append(
            f"{at}.backend: must name one of backends: {_list(backends) or '(none defined)'};"
            f" got {backend_name!r}"
        )
    goal: float | None = None
    percentile: int | None = None
    threshold: float | None = None
    if method == "good_bad_ratio":
        goal = _number(
            item.get("goal"), f"{at}.goal", problems, low=0, high=1, low_open=True, high_open=True
        )
        for key in ("percentile", "threshold_ms"):
            if key in item:
                problems.append(f"{at}.{key}: only for method latency_percentile")
    elif method == "latency_percentile":
        raw_p = item.get("percentile")
        if raw_p not in PERCENTILES or isinstance(raw_p, bool):
            problems.append(f"{at}.percentile: must be one of {_list(PERCENTILES)}; got {raw_p!r}")
        else:
            percentile = int(raw_p)
            goal = percentile / 100
        threshold = _number(
            item.get("threshold_ms"), f"{at}.threshold_ms", problems, low=0, low_open=True
        )
        if "goal" in item:
            problems.append(
                f"{at}.goal: not used by latency_percentile; the percentile sets the goal"
            )
    window_s = default_window_s
    if "window" in item:
        window_s = _duration(item["window"], f"{at}.window", problems) or default_window_s
    policy_name = str(item.get("error_budget_policy", "default"))
    rules = policies.get(policy_name)
    if rules is None:
        problems.append(
            f"{at}.error_budget_policy: must name one of {_list(policies)}; got {policy_name!r}"
        )
    query: SliQuery | None = None
    sli_raw = item.get("service_level_indicator")
    if not isinstance(sli_raw, Mapping):
        problems.append(f"{at}.service_level_indicator: required mapping; got {_kind(sli_raw)}")
    elif backend is not None and method in METHODS:
        query, sli_problems = backend_module(backend.type).parse_query(str(method), sli_raw)
        problems.extend(f"{at}.service_level_indicator.{p}" for p in sli_problems)
    for key in ("service", "sli", "description"):
        if key in item and not isinstance(item[key], str):
            problems.append(f"{at}.{key}: must be a string; got {item[key]!r}")
    no_data_after = item.get("no_data_alert_after", DEFAULT_NO_DATA_ALERT_AFTER)
    if (
        isinstance(no_data_after, bool)
        or not isinstance(no_data_after, int)
        or not 0 <= no_data_after <= MAX_NO_DATA_ALERT_AFTER
    ):
        problems.append(
            f"{at}.no_data_alert_after: must be a whole number of windows from 0 (never) to "
            f"{MAX_NO_DATA_ALERT_AFTER}; got {no_data_after!r}"
        )
    if len(problems) > before or query is None or goal is None or rules is None:
        return None
    default_sli = "latency" if method == "latency_percentile" else "availability"
    return Slo(
        name=str(name),
        service=str(item.get("service", name)),
        sli=str(item.get("sli", default_sli)),
        backend=str(backend_name),
        method=cast(Method, method),
        goal=goal,
        window_s=window_s,
        rules=rules,
        query=query,
        description=str(item.get("description", "")),
        percentile=percentile,
        threshold_ms=threshold,
        no_data_alert_after=int(no_data_after),
    )


def _number(
    value: object,
    where: str,
    problems: list[str],
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float | None:
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    allowed = "a number" + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(f"{where}: required, {allowed}; got {value!r}")
        return None
    number = float(value)
    too_low = low is not None and (number <= low if low_open else number < low)
    too_high = high is not None and (number >= high if high_open else number > high)
    if too_low or too_high or number != number:
        problems.append(f"{where}: must be {allowed}; got {value!r}")
        return None
    return number


def _duration(value: object, where: str, problems: list[str]) -> int | None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if seconds < MIN_WINDOW_S:
        # Cloud Monitoring's shortest alignment period; shorter windows would be silently wider.
        problems.append(f"{where}: must be at least 60s (1m); got {value!r}")
        return None
    return seconds


def _unknown_keys(
    item: Mapping[str, Any], allowed: set[str], where: str, problems: list[str]
) -> None:
    for key in item:
        if key not in allowed:
            problems.append(f"{where}: unknown field {key!r}; allowed: {_list(sorted(allowed))}")


def _kind(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:80]


def _list(values: Sequence[object] | Mapping[str, object] | set[str]) -> str:
    return ", ".join(str(v) for v in values)


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g}%"


def main(argv: Sequence[str] | None = None) -> int:
    """``check PATH...``: validate SLO files; prints each problem and exits 1 if any is invalid."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "check":
        print("usage: python -m shared.slo.config check PATH [PATH ...]", file=sys.stderr)
        return 2
    status = 0
    for path in args[1:]:
        try:
            config = load_config(path)
        except ConfigInvalid as exc:
            print(exc, file=sys.stderr)
            status = 1
            continue
        print(f"{path}: OK, {len(config.slos)} SLO(s): {', '.join(s.name for s in config.slos)}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
