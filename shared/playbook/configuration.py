"""The ``configuration:`` block: named values, overridable from the environment and ``--var``.

Each entry is a plain value (``duration_s: 900``) or ``{env: NAME, default: value}``. A value is
taken, first match wins, from ``--var name=value``, then the environment variable (when one is
declared and set), then the default. Text from ``--var`` or the environment is converted to the
default's type (bool, int, float, str); a default of ``null`` takes the text as YAML scalar.

``${name}`` anywhere in a string of the playbook is replaced by the value; a string that is
exactly ``${name}`` becomes the value itself (so numbers stay numbers). ``$${`` is a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import yaml

from shared.playbook.errors import PlaybookInvalid

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENV: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_REFERENCE: Final = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_WHOLE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}\Z")
_BOOLS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def resolve_configuration(
    playbook: str,
    block: Any,
    *,
    environ: Mapping[str, str],
    overrides: Mapping[str, str],
) -> dict[str, Any]:
    """The configuration values in effect; :class:`PlaybookInvalid` on any bad entry."""
    if block is None:
        block = {}
    if not isinstance(block, Mapping):
        raise PlaybookInvalid(playbook, "configuration", "must be a mapping of name to value")
    values: dict[str, Any] = {}
    for name, entry in block.items():
        path = f"configuration.{name}"
        if not isinstance(name, str) or not _NAME.match(name):
            raise PlaybookInvalid(
                playbook, path, "names must be identifiers like proxy_url (letters, digits, _)"
            )
        env_name: str | None = None
        default = entry
        if isinstance(entry, Mapping):
            unknown = sorted(str(k) for k in entry if k not in ("env", "default"))
            if unknown:
                raise PlaybookInvalid(
                    playbook, path, f"unknown field {unknown[0]!r}; allowed: default, env"
                )
            env_name = entry.get("env")
            default = entry.get("default")
            if env_name is not None and (not isinstance(env_name, str) or not _ENV.match(env_name)):
                raise PlaybookInvalid(
                    playbook,
                    f"{path}.env",
                    f"must be an environment variable name; got {env_name!r}",
                )
        elif isinstance(entry, list):
            raise PlaybookInvalid(playbook, path, "must be a scalar or {env: NAME, default: value}")
        if name in overrides:
            values[name] = _convert(playbook, path, f"--var {name}", overrides[name], default)
        elif env_name is not None and environ.get(env_name, "") != "":
            values[name] = _convert(playbook, path, f"${env_name}", environ[env_name], default)
        else:
            values[name] = default
    unknown_vars = sorted(set(overrides) - set(values))
    if unknown_vars:
        known = ", ".join(sorted(values)) or "(none)"
        raise PlaybookInvalid(
            playbook,
            f"--var {unknown_vars[0]}",
            f"not a configuration name of this playbook; known: {known}",
        )
    return values


def _convert(playbook: str, path: str, source: str, text: str, default: Any) -> Any:
    def bad(kind: str) -> PlaybookInvalid:
        return PlaybookInvalid(playbook, path, f"{source}={text!r} must be {kind}")

    if isinstance(default, bool):
        if text.strip().lower() not in _BOOLS:
            raise bad("true or false")
        return _BOOLS[text.strip().lower()]
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError:
            raise bad(f"an integer like the default {default}") from None
    if isinstance(default, float):
        try:
            return float(text)
        except ValueError:
            raise bad(f"a number like the default {default:g}") from None
    if isinstance(default, str):
        return text
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return parsed if isinstance(parsed, str | int | float | bool) or parsed is None else text


def substitute(playbook: str, node: Any, values: Mapping[str, Any], path: str) -> Any:
    """``node`` with every ``${name}`` replaced from ``values``."""
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole:
            return _value(playbook, whole.group(1), values, path)

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            return str(_value(playbook, match.group(1), values, path))

        return _REFERENCE.sub(replace, node)
    if isinstance(node, Mapping):
        return {
            key: substitute(playbook, value, values, f"{path}.{key}" if path else str(key))
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [substitute(playbook, item, values, f"{path}[{i}]") for i, item in enumerate(node)]
    return node


def _value(playbook: str, name: str, values: Mapping[str, Any], path: str) -> Any:
    if name not in values:
        known = ", ".join(sorted(values)) or "(none)"
        raise PlaybookInvalid(
            playbook, path, f"unknown configuration variable ${{{name}}}; defined: {known}"
        )
    return values[name]
