"""Read a playbook (YAML) and validate all of it into a :class:`~shared.playbook.model.Playbook`.

Nothing runs before the whole file is valid. Every error is a :class:`PlaybookInvalid` whose
message names the playbook, the path of the value (``method[2].provider.arguments.mode``) and
what is allowed. Python providers are resolved here: the function must exist under an allowed
package (default ``shared.``) and accept the given keyword arguments.
"""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, cast, get_args
from urllib.parse import urlsplit

import yaml

from shared.playbook.configuration import resolve_configuration, substitute
from shared.playbook.errors import PlaybookInvalid
from shared.playbook.model import (
    Activity,
    ActivityType,
    Criterion,
    HttpMethod,
    HttpProvider,
    Hypothesis,
    LoadProvider,
    Pauses,
    Playbook,
    Provider,
    PythonProvider,
    SleepProvider,
)
from shared.playbook.tolerance import OPERATORS, Tolerance

DEFAULT_ALLOWED_MODULES: Final = ("shared.",)
"""Python providers may only call functions in these packages (prefixes of the dotted path)."""
MAX_TIMEOUT_S: Final = 300.0
MAX_SLEEP_S: Final = 4 * 3600.0
MAX_LOAD_DURATION_S: Final = 3600.0
MAX_LOAD_RATE_RPS: Final = 1000.0
MAX_LOAD_CONCURRENCY: Final = 64
MAX_LOAD_REQUESTS: Final = 100_000
"""Hard cap on the requests one load activity may send, whatever its rate and duration."""

TOP_LEVEL: Final = (
    "title",
    "description",
    "tags",
    "configuration",
    "hypothesis",
    "method",
    "rollbacks",
    "success_criteria",
)
ACTIVITY_FIELDS: Final = ("type", "name", "provider", "tolerance", "pauses")
PROVIDER_TYPES: Final = ("http", "load", "python", "sleep")
HTTP_METHODS: Final[tuple[str, ...]] = get_args(HttpMethod)
_PROVIDER_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "http": ("type", "url", "method", "query", "headers", "json", "timeout_s", "expected_status"),
    "python": ("type", "func", "arguments"),
    "load": (
        "type",
        "url",
        "rate_rps",
        "duration_s",
        "concurrency",
        "max_requests",
        "method",
        "query",
        "headers",
        "json",
        "timeout_s",
        "allow_remote",
    ),
    "sleep": ("type", "seconds"),
}
_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "http": ("url",),
    "python": ("func",),
    "load": ("url", "rate_rps", "duration_s"),
    "sleep": ("seconds",),
}
_TOLERANCE_FIELDS: Final = ("path", "value", "op", "range")
_PATH: Final = re.compile(r"output(\.[A-Za-z0-9_\-]+)*\Z")
_DOTTED: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+\Z")


def load_playbook(
    path: str | os.PathLike[str],
    *,
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    allowed_modules: Sequence[str] = DEFAULT_ALLOWED_MODULES,
) -> Playbook:
    """Read and validate the YAML playbook at ``path``.

    ``variables`` are ``--var`` overrides; ``environ`` defaults to ``os.environ`` (read now).
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PlaybookInvalid(name, "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PlaybookInvalid(name, "", f"not valid YAML: {exc}") from exc
    return parse_playbook(
        document,
        source=name,
        variables=variables,
        environ=environ,
        allowed_modules=allowed_modules,
    )


def parse_playbook(
    document: Any,
    *,
    source: str = "<playbook>",
    variables: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    allowed_modules: Sequence[str] = DEFAULT_ALLOWED_MODULES,
) -> Playbook:
    """Validate an already parsed playbook document (see :func:`load_playbook`)."""
    return _Validator(source, allowed_modules).playbook(
        document, variables or {}, os.environ if environ is None else environ
    )


def _describe(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    return repr(value)


class _Validator:
    def __init__(self, source: str, allowed_modules: Sequence[str]) -> None:
        self.source = source
        self.allowed = tuple(allowed_modules)

    def error(self, path: str, problem: str) -> PlaybookInvalid:
        return PlaybookInvalid(self.source, path, problem)

    def must(self, path: str, allowed: str, got: Any) -> PlaybookInvalid:
        return self.error(path, f"must be {allowed}; got {_describe(got)}")

    # -- structure ----------------------------------------------------------------------------

    def fields(
        self, node: Any, path: str, allowed: Sequence[str], required: Sequence[str] = ()
    ) -> Mapping[str, Any]:
        if not isinstance(node, Mapping):
            raise self.must(path or "playbook", "a mapping", node)
        unknown = sorted(str(k) for k in node if k not in allowed)
        if unknown:
            raise self.error(
                path or "playbook",
                f"unknown field {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}",
            )
        for key in required:
            if key not in node:
                raise self.error(_join(path, key), "is required")
        return cast(Mapping[str, Any], node)

    def playbook(
        self, document: Any, variables: Mapping[str, str], environ: Mapping[str, str]
    ) -> Playbook:
        top = self.fields(document, "", TOP_LEVEL, ("title", "method"))
        values = resolve_configuration(
            self.source, top.get("configuration"), environ=environ, overrides=variables
        )
        body = {k: v for k, v in top.items() if k != "configuration"}
        doc = substitute(self.source, body, values, "")
        title = self.text(doc["title"], "title")
        description = self.text(doc.get("description", ""), "description", empty=True)
        tags = doc.get("tags", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise self.must("tags", "a list of strings", tags)
        hypothesis = self.hypothesis(doc.get("hypothesis"))
        method = self.activities(doc["method"], "method", nonempty=True)
        rollbacks = self.activities(doc.get("rollbacks", []), "rollbacks")
        for index, activity in enumerate(rollbacks):
            if activity.type != "action":
                raise self.must(f"rollbacks[{index}].type", "'action'", activity.type)
        names: dict[str, str] = {}
        for activity in (*(hypothesis.probes if hypothesis else ()), *method, *rollbacks):
            if activity.name in names:
                raise self.error(
                    f"{activity.path}.name",
                    f"duplicate name {activity.name!r} (also at {names[activity.name]}); "
                    "activity names must be unique",
                )
            names[activity.name] = activity.path
        probes = tuple(a.name for a in method if a.type == "probe")
        criteria = self.criteria(doc.get("success_criteria", []), probes)
        return Playbook(
            title=title,
            description=description,
            source=self.source,
            hypothesis=hypothesis,
            method=method,
            rollbacks=rollbacks,
            success_criteria=criteria,
            configuration=values,
            tags=tuple(tags),
        )

    def hypothesis(self, node: Any) -> Hypothesis | None:
        if node is None:
            return None
        fields = self.fields(node, "hypothesis", ("title", "probes"), ("probes",))
        title = self.text(fields.get("title", "steady state"), "hypothesis.title")
        probes = self.activities(fields["probes"], "hypothesis.probes", nonempty=True)
        for index, probe in enumerate(probes):
            path = f"hypothesis.probes[{index}]"
            if probe.type != "probe":
                raise self.must(
                    f"{path}.type", "'probe' (the hypothesis only observes)", probe.type
                )
            if probe.tolerance is None:
                raise self.error(f"{path}.tolerance", "is required for a hypothesis probe")
        return Hypothesis(title, probes)

    def criteria(self, node: Any, probes: Sequence[str]) -> tuple[Criterion, ...]:
        if not isinstance(node, list):
            raise self.must("success_criteria", "a list", node)
        out = []
        for index, item in enumerate(node):
            path = f"success_criteria[{index}]"
            fields = self.fields(item, path, ("name", "probe", "tolerance"), ("probe", "tolerance"))
            probe = fields["probe"]
            if probe not in probes:
                listed = ", ".join(probes) or "(the method has no probes)"
                raise self.must(f"{path}.probe", f"the name of a method probe ({listed})", probe)
            name = self.text(fields.get("name", probe), f"{path}.name")
            tolerance = self.tolerance(fields["tolerance"], f"{path}.tolerance")
            out.append(Criterion(name, probe, tolerance, path))
        return tuple(out)

    def activities(self, node: Any, path: str, *, nonempty: bool = False) -> tuple[Activity, ...]:
        if not isinstance(node, list) or (nonempty and not node):
            raise self.must(path, "a non-empty list" if nonempty else "a list", node)
        return tuple(self.activity(item, f"{path}[{i}]") for i, item in enumerate(node))

    def activity(self, node: Any, path: str) -> Activity:
        fields = self.fields(node, path, ACTIVITY_FIELDS, ("type", "name", "provider"))
        kind = fields["type"]
        if kind not in ("action", "probe"):
            raise self.must(f"{path}.type", "one of action, probe", kind)
        name = self.text(fields["name"], f"{path}.name")
        provider = self.provider(fields["provider"], f"{path}.provider")
        tolerance = None
        if "tolerance" in fields:
            if kind != "probe":
                raise self.error(f"{path}.tolerance", "only probes have a tolerance")
            tolerance = self.tolerance(fields["tolerance"], f"{path}.tolerance")
        pauses = Pauses()
        if "pauses" in fields:
            raw = self.fields(fields["pauses"], f"{path}.pauses", ("before", "after"))
            pauses = Pauses(
                before=self.seconds(raw.get("before", 0), f"{path}.pauses.before", MAX_SLEEP_S),
                after=self.seconds(raw.get("after", 0), f"{path}.pauses.after", MAX_SLEEP_S),
            )
        return Activity(cast(ActivityType, kind), name, provider, path, tolerance, pauses)

    # -- providers ----------------------------------------------------------------------------

    def provider(self, node: Any, path: str) -> Provider:
        if not isinstance(node, Mapping):
            raise self.must(path, "a mapping with a type", node)
        kind = node.get("type")
        if kind not in PROVIDER_TYPES:
            raise self.must(f"{path}.type", f"one of {', '.join(PROVIDER_TYPES)}", kind)
        fields = self.fields(node, path, _PROVIDER_FIELDS[kind], _REQUIRED[kind])
        builders: dict[str, Callable[[Mapping[str, Any], str], Provider]] = {
            "http": self.http,
            "python": self.python,
            "load": self.load,
            "sleep": self.sleep,
        }
        return builders[kind](fields, path)

    def http(self, f: Mapping[str, Any], path: str) -> HttpProvider:
        return HttpProvider(
            url=self.url(f["url"], f"{path}.url"),
            method=self.method(f.get("method", "GET"), f"{path}.method"),
            query=self.strings(f.get("query", {}), f"{path}.query"),
            headers=self.strings(f.get("headers", {}), f"{path}.headers"),
            json=f.get("json"),
            timeout_s=self.seconds(f.get("timeout_s", 10.0), f"{path}.timeout_s", MAX_TIMEOUT_S, 0),
            expected_status=self.statuses(f.get("expected_status", []), f"{path}.expected_status"),
        )

    def load(self, f: Mapping[str, Any], path: str) -> LoadProvider:
        allow_remote = f.get("allow_remote", False)
        if not isinstance(allow_remote, bool):
            raise self.must(f"{path}.allow_remote", "true or false", allow_remote)
        url = self.url(f["url"], f"{path}.url")
        if not allow_remote and not _is_loopback(url):
            raise self.error(
                f"{path}.url",
                f"load may only target loopback hosts (127.0.0.1, ::1, localhost) unless "
                f"allow_remote is true; got {url!r}",
            )
        rate = self.number(f["rate_rps"], f"{path}.rate_rps", 0, MAX_LOAD_RATE_RPS)
        duration = self.seconds(f["duration_s"], f"{path}.duration_s", MAX_LOAD_DURATION_S, 0)
        planned = math.ceil(rate * duration)
        if "max_requests" not in f and planned > MAX_LOAD_REQUESTS:
            raise self.error(
                path,
                f"rate_rps x duration_s is {planned} requests, above the hard cap of "
                f"{MAX_LOAD_REQUESTS}; lower them or set max_requests",
            )
        max_requests = self.integer(
            f.get("max_requests", planned), f"{path}.max_requests", 1, MAX_LOAD_REQUESTS
        )
        return LoadProvider(
            url=url,
            rate_rps=rate,
            duration_s=duration,
            concurrency=self.integer(
                f.get("concurrency", 8), f"{path}.concurrency", 1, MAX_LOAD_CONCURRENCY
            ),
            max_requests=max_requests,
            method=self.method(f.get("method", "GET"), f"{path}.method"),
            query=self.strings(f.get("query", {}), f"{path}.query"),
            headers=self.strings(f.get("headers", {}), f"{path}.headers"),
            json=f.get("json"),
            timeout_s=self.seconds(f.get("timeout_s", 10.0), f"{path}.timeout_s", MAX_TIMEOUT_S, 0),
            allow_remote=allow_remote,
        )

    def sleep(self, f: Mapping[str, Any], path: str) -> SleepProvider:
        return SleepProvider(self.seconds(f["seconds"], f"{path}.seconds", MAX_SLEEP_S))

    def python(self, f: Mapping[str, Any], path: str) -> PythonProvider:
        func = f["func"]
        allowed = ", ".join(self.allowed)
        if (
            not isinstance(func, str)
            or not _DOTTED.match(func)
            or not func.startswith(self.allowed)
        ):
            raise self.must(f"{path}.func", f"a dotted function path under {allowed}", func)
        arguments = f.get("arguments", {})
        if not isinstance(arguments, Mapping) or not all(isinstance(k, str) for k in arguments):
            raise self.must(f"{path}.arguments", "a mapping of keyword arguments", arguments)
        target = resolve_function(func)
        if isinstance(target, str):
            raise self.error(f"{path}.func", target)
        try:
            signature = inspect.signature(target)
        except (TypeError, ValueError):
            return PythonProvider(func, dict(arguments))
        accepted = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        takes_any = any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values())
        for key in arguments:
            if key not in accepted and not takes_any:
                raise self.error(
                    f"{path}.arguments.{key}",
                    f"{func} has no parameter {key!r}; "
                    f"it accepts: {', '.join(accepted) or '(none)'}",
                )
        for parameter in signature.parameters.values():
            if (
                parameter.default is parameter.empty
                and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
                and parameter.name not in arguments
            ):
                raise self.error(f"{path}.arguments.{parameter.name}", f"is required by {func}")
        return PythonProvider(func, dict(arguments))

    # -- values -------------------------------------------------------------------------------

    def tolerance(self, node: Any, path: str) -> Tolerance:
        if isinstance(node, list):
            return self.range(node, path, None)
        if not isinstance(node, Mapping):
            if isinstance(node, float) and not math.isfinite(node):
                raise self.must(path, "a finite value", node)
            return Tolerance("exact", value=node)
        fields = self.fields(node, path, _TOLERANCE_FIELDS)
        target = fields.get("path")
        if target is not None and (not isinstance(target, str) or not _PATH.match(target)):
            raise self.must(f"{path}.path", "a dotted path starting with output", target)
        if "range" in fields:
            if "op" in fields or "value" in fields:
                raise self.error(path, "give either range or op/value, not both")
            return self.range(fields["range"], f"{path}.range", target)
        if "value" not in fields:
            raise self.error(f"{path}.value", "is required (or give range)")
        value = fields["value"]
        if "op" not in fields:
            return Tolerance("exact", value=value, path=target)
        op = fields["op"]
        if op not in OPERATORS:
            raise self.must(f"{path}.op", f"one of {', '.join(OPERATORS)}", op)
        if op not in ("==", "!=") and not _finite(value):
            raise self.must(f"{path}.value", f"a finite number for {op}", value)
        return Tolerance("compare", value=value, op=op, path=target)

    def range(self, node: Any, path: str, target: str | None) -> Tolerance:
        if not isinstance(node, list) or len(node) != 2 or not all(map(_finite, node)):
            raise self.must(path, "a range [low, high] of two numbers", node)
        low, high = float(node[0]), float(node[1])
        if low > high:
            raise self.error(path, f"low {low:g} is above high {high:g}")
        return Tolerance("range", low=low, high=high, path=target)

    def text(self, value: Any, path: str, *, empty: bool = False) -> str:
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self.must(path, "a non-empty string" if not empty else "a string", value)
        return value.strip()

    def number(self, value: Any, path: str, low: float, high: float) -> float:
        if not _finite(value) or not low < value <= high:
            raise self.must(path, f"a number in ({low:g}, {high:g}]", value)
        return float(value)

    def seconds(self, value: Any, path: str, high: float, low: float | None = None) -> float:
        if low is None:
            if not _finite(value) or not 0 <= value <= high:
                raise self.must(path, f"a number of seconds in [0, {high:g}]", value)
            return float(value)
        if not _finite(value) or not low < value <= high:
            raise self.must(path, f"a number of seconds in ({low:g}, {high:g}]", value)
        return float(value)

    def integer(self, value: Any, path: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.must(path, f"an integer in [{low}, {high}]", value)
        return value

    def url(self, value: Any, path: str) -> str:
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.must(path, "an http:// or https:// URL", value)
        return cast(str, value)

    def method(self, value: Any, path: str) -> HttpMethod:
        if value not in HTTP_METHODS:
            raise self.must(path, f"one of {', '.join(HTTP_METHODS)}", value)
        return cast(HttpMethod, value)

    def strings(self, value: Any, path: str) -> dict[str, str]:
        if not isinstance(value, Mapping):
            raise self.must(path, "a mapping of names to values", value)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str | int | float | bool):
                raise self.must(f"{path}.{key}", "a string, number or boolean", item)
            out[key] = str(item).lower() if isinstance(item, bool) else str(item)
        return out

    def statuses(self, value: Any, path: str) -> tuple[int, ...]:
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int) or not 100 <= item <= 599:
                raise self.must(path, "an HTTP status or a list of them (100..599)", value)
        return tuple(items)


def resolve_function(dotted: str) -> Callable[..., Any] | str:
    """The function at ``dotted`` (``package.module.function``), or why it cannot be found."""
    module_name, _, attribute = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        return f"cannot import module {module_name!r}: {exc}"
    target = getattr(module, attribute, None)
    if target is None:
        public = sorted(
            n
            for n, v in vars(module).items()
            if inspect.isfunction(v) and v.__module__ == module_name and not n.startswith("_")
        )
        return f"module {module_name!r} has no function {attribute!r}; it has: {', '.join(public)}"
    if not callable(target):
        return f"{dotted} is not callable"
    return cast(Callable[..., Any], target)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
