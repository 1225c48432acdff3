"""The LLM model table: which provider, endpoint, key and timeout serve each model name.

A table is configuration as data: the built-in :data:`DEFAULT_MODEL_TABLE` holds the four seed
models, and :func:`load_model_table` overlays a YAML/JSON file or a dict on it, validating every
entry up front with an error that names the model, the field and what is allowed. API keys are
never stored in the table, only the name of the environment variable holding them; they are read
at call time by :func:`api_key_for` and never logged.
"""

from __future__ import annotations

import functools
import json
import os
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

import yaml

from shared.resilience.errors import ConfigError
from shared.settings import Env

__all__ = [
    "DEFAULT_CHAIN",
    "DEFAULT_MODEL_TABLE",
    "MAX_TIMEOUT",
    "MODEL_TABLE_ENV",
    "PROVIDERS",
    "MissingApiKey",
    "ModelSpec",
    "ModelTable",
    "ProviderName",
    "api_key_for",
    "clear_model_tables",
    "load_model_table",
    "model_table",
]

ProviderName = Literal["anthropic", "openai"]
PROVIDERS: Final[tuple[str, ...]] = tuple(sorted(get_args(ProviderName)))

#: Environment variable naming a YAML/JSON model-table file overlaid on the defaults.
MODEL_TABLE_ENV: Final = "LLM_MODEL_TABLE"

#: Upper bound for a per-model timeout, in seconds; a longer wait outlives any function request.
MAX_TIMEOUT: Final = 600.0

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_URL = re.compile(r"https?://[^/\s?#]+(/[^\s?#]*)?\Z")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """How to reach one model.

    ``base_url`` has no trailing slash; the OpenAI provider posts to ``{base_url}/chat/completions``
    and the Anthropic provider to ``{base_url}/v1/messages``. ``timeout`` is in seconds and bounds
    the connect and each read of one HTTP call. ``api_key_env`` is None for keyless servers.
    """

    name: str
    provider: ProviderName
    base_url: str
    model: str
    api_key_env: str | None = None
    timeout: float = 30.0
    max_tokens: int = 1024


_FIELDS: Final = ("provider", "base_url", "model", "api_key_env", "timeout", "max_tokens")
_REQUIRED_FOR_NEW: Final = ("provider", "base_url")


@dataclass(frozen=True, slots=True)
class ModelTable:
    """An immutable mapping of model name to :class:`ModelSpec`."""

    specs: Mapping[str, ModelSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "specs", types.MappingProxyType(dict(self.specs)))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.specs)

    def __contains__(self, name: object) -> bool:
        return name in self.specs

    def spec(self, name: str) -> ModelSpec:
        """The spec of ``name``; :class:`ConfigError` listing the known models if absent."""
        try:
            return self.specs[name]
        except KeyError:
            known = ", ".join(sorted(self.specs)) or "(none)"
            raise ConfigError(f"unknown model {name!r}; known models: {known}") from None

    def chain(self, names: Iterable[str]) -> tuple[ModelSpec, ...]:
        """The specs of a fallback chain, validated: non-empty, known models, no repeats."""
        if isinstance(names, str):
            raise ConfigError(f"models must be a sequence of model names, not the string {names!r}")
        resolved = tuple(self.spec(n) for n in names)
        if not resolved:
            raise ConfigError("a fallback chain needs at least one model")
        seen: set[str] = set()
        for spec in resolved:
            if spec.name in seen:
                raise ConfigError(f"model {spec.name!r} appears twice in the fallback chain")
            seen.add(spec.name)
        return resolved


_OPENAI: Final = "https://api.openai.com/v1"

DEFAULT_MODEL_TABLE: Final = ModelTable(
    {
        "gpt-4o-mini": ModelSpec(
            name="gpt-4o-mini",
            provider="openai",
            base_url=_OPENAI,
            model="gpt-4o-mini",
            api_key_env="OPENAI_API_KEY",
            timeout=20.0,
        ),
        "gpt-4o": ModelSpec(
            name="gpt-4o",
            provider="openai",
            base_url=_OPENAI,
            model="gpt-4o",
            api_key_env="OPENAI_API_KEY",
            timeout=30.0,
        ),
        "claude-opus": ModelSpec(
            name="claude-opus",
            provider="anthropic",
            base_url="https://api.anthropic.com",
            model="claude-opus-4-1",
            api_key_env="ANTHROPIC_API_KEY",
            timeout=30.0,
        ),
        # Any OpenAI-compatible server (llama.cpp, vLLM, Ollama) on the same host; no key.
        "local-llm": ModelSpec(
            name="local-llm",
            provider="openai",
            base_url="http://127.0.0.1:8080/v1",
            model="local-llm",
            timeout=30.0,
        ),
    }
)

#: The seed chain: cheapest first, local model last.
DEFAULT_CHAIN: Final = ("gpt-4o-mini", "gpt-4o", "claude-opus", "local-llm")


class MissingApiKey(ConfigError):
    """A model's API-key environment variable is unset or empty; that model cannot be called."""

    def __init__(self, model: str, env_var: str) -> None:
        super().__init__(f"model {model!r}: API key environment variable {env_var} is not set")
        self.model = model
        self.env_var = env_var


def api_key_for(spec: ModelSpec, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key of ``spec`` read now from ``environ`` (default ``os.environ``), or None.

    Raises :class:`MissingApiKey` when the model needs a key and the variable is unset or blank.
    """
    if spec.api_key_env is None:
        return None
    key = Env(environ).text(spec.api_key_env)
    if not key:
        raise MissingApiKey(spec.name, spec.api_key_env)
    return key


def load_model_table(
    source: str | os.PathLike[str] | Mapping[str, Any],
    *,
    base: ModelTable = DEFAULT_MODEL_TABLE,
) -> ModelTable:
    """Overlay a model-table document on ``base`` (the defaults unless given) and validate it.

    ``source`` is a path to a ``.yaml``/``.yml``/``.json`` file or an already parsed dict of the
    form ``{"models": {name: {field: value}}}``. An entry for a model already in ``base`` overrides
    only the fields it names; a new model needs at least ``provider`` and ``base_url`` (``model``
    defaults to the name, ``api_key_env`` to none, ``timeout`` to 30 s, ``max_tokens`` to 1024).
    Pass ``base=ModelTable()`` to start from an empty table.
    """
    if isinstance(source, Mapping):
        return _overlay(source, base, "model table")
    path = Path(source)
    return _overlay(_read_document(path), base, str(path))


def _read_document(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read model table: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()}: {exc}") from exc
    raise ConfigError(
        f"{path}: unsupported model table format {suffix!r}; use .yaml, .yml or .json"
    )


def _overlay(document: Any, base: ModelTable, where: str) -> ModelTable:
    if not isinstance(document, Mapping) or set(document) != {"models"}:
        raise ConfigError(f"{where}: expected a mapping with the single key 'models'")
    entries = document["models"]
    if not isinstance(entries, Mapping):
        raise ConfigError(f"{where}: 'models' must map model names to their settings")
    specs = dict(base.specs)
    for name, entry in entries.items():
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{where}: model names must be non-empty strings, got {name!r}")
        specs[name] = _spec(name, entry, specs.get(name), f"{where}: model {name!r}")
    return ModelTable(specs)


def _spec(name: str, entry: Any, current: ModelSpec | None, where: str) -> ModelSpec:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where}: settings must be a mapping of {', '.join(_FIELDS)}")
    unknown = sorted(str(k) for k in entry if k not in _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(_FIELDS)}")
    if current is None:
        missing = [f for f in _REQUIRED_FOR_NEW if f not in entry]
        if missing:
            raise ConfigError(
                f"{where}: missing required field {missing[0]!r} (a new model needs "
                f"{' and '.join(_REQUIRED_FOR_NEW)})"
            )
    changes = {key: _check(key, value, where) for key, value in entry.items()}
    if current is None:
        return ModelSpec(**{"name": name, "model": name, **changes})
    return replace(current, **changes)


def _check(key: str, value: Any, where: str) -> Any:
    def bad(allowed: str) -> ConfigError:
        return ConfigError(f"{where}: field {key!r} must be {allowed}; got {value!r}")

    if key == "provider":
        if value not in PROVIDERS:
            raise bad("one of " + ", ".join(repr(p) for p in PROVIDERS))
        return cast(ProviderName, value)
    if key == "base_url":
        if not isinstance(value, str) or not _URL.match(value.strip()):
            raise bad("an http:// or https:// URL without query or fragment")
        return value.strip().rstrip("/")
    if key == "model":
        if not isinstance(value, str) or not value.strip():
            raise bad("a non-empty string (the provider's model id)")
        return value.strip()
    if key == "api_key_env":
        if value is not None and (not isinstance(value, str) or not _ENV_NAME.match(value)):
            raise bad("null or an environment variable name like OPENAI_API_KEY")
        return value
    if key == "timeout":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not 0 < value <= MAX_TIMEOUT
        ):
            raise bad(f"a number of seconds in (0, {MAX_TIMEOUT:g}]")
        return float(value)
    # max_tokens, the only other field _spec lets through
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise bad("a positive integer")
    return value


def model_table(environ: Mapping[str, str] | None = None) -> ModelTable:
    """The table in effect: the file named by ``$LLM_MODEL_TABLE`` over the defaults, if set.

    Read at call time; each file is parsed once per process (deployments do not edit it in place).
    """
    path = Env(environ).text(MODEL_TABLE_ENV)
    return _cached_table(path) if path else DEFAULT_MODEL_TABLE


@functools.lru_cache(maxsize=4)
def _cached_table(path: str) -> ModelTable:
    return load_model_table(path)


def clear_model_tables() -> None:
    """Forget the parsed model-table files, so the next :func:`model_table` reads them again."""
    _cached_table.cache_clear()
