"""The model table and both providers, against the real local LLM server over loopback HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.resilience.errors import ConfigError
from shared.resilience.llm import (
    DEFAULT_CHAIN,
    DEFAULT_MODEL_TABLE,
    MODEL_TABLE_ENV,
    MissingApiKey,
    ModelSpec,
    ModelTable,
    api_key_for,
    load_model_table,
    model_table,
)
from shared.resilience.llm_providers import (
    ANTHROPIC_VERSION,
    AnthropicMessagesProvider,
    HttpProvider,
    MalformedResponse,
    OpenAIChatProvider,
    make_providers,
)
from shared.resilience.transient import HttpStatusError, is_business_error, is_transient
from tests.llm_servers import (
    DROP,
    RATE_LIMITED,
    LLMServer,
    answer_text,
    fail,
    raw,
    slow,
)

OPENAI_KEY = "sk-test-openai"
ANTHROPIC_KEY = "sk-ant-test"


@pytest.fixture(scope="module")
def module_server() -> Iterator[LLMServer]:
    with LLMServer(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture
def server(module_server: LLMServer) -> LLMServer:
    module_server.reset()
    module_server.max_prompt_chars = None
    return module_server


def openai_spec(server: LLMServer, **changes: Any) -> ModelSpec:
    spec = ModelSpec(
        "gpt-4o-mini",
        "openai",
        server.openai_base_url,
        "gpt-4o-mini",
        api_key_env="OPENAI_API_KEY",
        timeout=2.0,
    )
    return replace(spec, **changes)


def anthropic_spec(server: LLMServer, **changes: Any) -> ModelSpec:
    spec = ModelSpec(
        "claude-opus",
        "anthropic",
        server.anthropic_base_url,
        "claude-opus-4-1",
        api_key_env="ANTHROPIC_API_KEY",
        timeout=2.0,
        max_tokens=64,
    )
    return replace(spec, **changes)


# -- OpenAI chat completions ---------------------------------------------------------------------


def test_openai_answers_and_sends_the_wire_format(server: LLMServer) -> None:
    provider = OpenAIChatProvider()
    assert provider.complete(openai_spec(server), "hello", OPENAI_KEY) == answer_text(
        "gpt-4o-mini", "hello"
    )
    (req,) = server.received
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert req.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "max_tokens": 1024,
    }


def test_openai_keyless_server_needs_no_authorization_header() -> None:
    with LLMServer(openai_key=None) as local:
        spec = ModelSpec("local-llm", "openai", local.openai_base_url, "llama", timeout=2.0)
        assert OpenAIChatProvider().complete(spec, "hi", None) == answer_text("llama", "hi")
        assert "authorization" not in local.received[0].headers


def test_openai_bad_key_is_401_business_error_without_the_key(server: LLMServer) -> None:
    with pytest.raises(HttpStatusError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", "sk-wrong-secret")
    assert info.value.status_code == 401
    assert is_business_error(info.value)
    assert str(info.value) == ("gpt-4o-mini: openai answered HTTP 401: Incorrect API key provided.")
    assert server.requests_for("gpt-4o-mini") == 0  # rejected before the model


def test_openai_missing_key_is_401(server: LLMServer) -> None:
    with pytest.raises(HttpStatusError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", None)
    assert info.value.status_code == 401
    assert "You didn't provide an API key" in str(info.value)


def test_openai_429_carries_retry_after_and_is_transient(server: LLMServer) -> None:
    server.set_behavior("gpt-4o-mini", RATE_LIMITED)
    with pytest.raises(HttpStatusError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", OPENAI_KEY)
    assert info.value.status_code == 429
    assert info.value.retry_after == 7.0
    assert is_transient(info.value)
    assert not is_business_error(info.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_openai_5xx_is_transient(server: LLMServer, status: int) -> None:
    server.set_behavior("gpt-4o-mini", fail(status))
    with pytest.raises(HttpStatusError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", OPENAI_KEY)
    assert info.value.status_code == status
    assert info.value.retry_after is None
    assert is_transient(info.value)
    assert f"scripted {status} for gpt-4o-mini" in str(info.value)


def test_openai_context_length_is_a_400_business_error(server: LLMServer) -> None:
    server.max_prompt_chars = 10
    with pytest.raises(HttpStatusError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "x" * 11, OPENAI_KEY)
    assert info.value.status_code == 400
    assert is_business_error(info.value)
    assert "prompt is 11 characters; this model's limit is 10" in str(info.value)


def test_slow_answer_times_out_as_transient(server: LLMServer) -> None:
    server.set_behavior("gpt-4o-mini", slow(5.0))
    with pytest.raises(requests.Timeout) as info:
        OpenAIChatProvider().complete(openai_spec(server, timeout=0.3), "hi", OPENAI_KEY)
    assert is_transient(info.value)


def test_dropped_connection_is_a_transient_connection_error(server: LLMServer) -> None:
    server.set_behavior("gpt-4o-mini", DROP)
    with pytest.raises(requests.ConnectionError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", OPENAI_KEY)
    assert is_transient(info.value)


def test_session_survives_a_drop_and_answers_next_call(server: LLMServer) -> None:
    server.queue("gpt-4o-mini", DROP)
    provider = OpenAIChatProvider()
    with pytest.raises(requests.ConnectionError):
        provider.complete(openai_spec(server), "one", OPENAI_KEY)
    assert provider.complete(openai_spec(server), "two", OPENAI_KEY) == answer_text(
        "gpt-4o-mini", "two"
    )


def test_connection_refused_is_transient() -> None:
    with LLMServer() as gone:
        base = gone.openai_base_url
    spec = ModelSpec("gpt-4o", "openai", base, "gpt-4o", timeout=1.0)
    with pytest.raises(requests.ConnectionError) as info:
        OpenAIChatProvider().complete(spec, "hi", None)
    assert is_transient(info.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html>bad gateway</html>", "gpt-4o-mini: openai answered non-JSON body"),
        ('{"choices": []}', "gpt-4o-mini: openai answer has no choices[0].message"),
        (
            '{"choices": [{"message": {"role": "assistant", "content": null}}]}',
            "gpt-4o-mini: openai answer has no text content",
        ),
    ],
)
def test_openai_unusable_answer_is_malformed_and_transient(
    server: LLMServer, body: str, message: str
) -> None:
    server.set_behavior("gpt-4o-mini", raw(body))
    with pytest.raises(MalformedResponse) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", OPENAI_KEY)
    assert str(info.value) == message
    assert is_transient(info.value)


def test_error_detail_falls_back_to_raw_body(server: LLMServer) -> None:
    server.set_behavior("gpt-4o-mini", raw("upstream   connect error\n", status=502))
    with pytest.raises(HttpStatusError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", OPENAI_KEY)
    assert str(info.value) == "gpt-4o-mini: openai answered HTTP 502: upstream connect error"


def test_redirects_are_not_followed(server: LLMServer) -> None:
    # A 3xx from an API endpoint is a misconfiguration; following it could leak the key.
    server.set_behavior("gpt-4o-mini", raw("", status=307))
    with pytest.raises(HttpStatusError) as info:
        OpenAIChatProvider().complete(openai_spec(server), "hi", OPENAI_KEY)
    assert info.value.status_code == 307


# -- Anthropic messages --------------------------------------------------------------------------


def test_anthropic_answers_and_sends_the_wire_format(server: LLMServer) -> None:
    provider = AnthropicMessagesProvider()
    answer = provider.complete(anthropic_spec(server), "bonjour", ANTHROPIC_KEY)
    assert answer == answer_text("claude-opus-4-1", "bonjour")
    (req,) = server.received
    assert req.path == "/v1/messages"
    assert req.headers["x-api-key"] == ANTHROPIC_KEY
    assert req.headers["anthropic-version"] == ANTHROPIC_VERSION == "2023-06-01"
    assert "authorization" not in req.headers
    assert req.body == {
        "model": "claude-opus-4-1",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "bonjour"}],
    }
    assert server.requests_for("claude-opus-4-1") == 1


def test_anthropic_bad_key_is_401(server: LLMServer) -> None:
    with pytest.raises(HttpStatusError) as info:
        AnthropicMessagesProvider().complete(anthropic_spec(server), "hi", "nope")
    assert info.value.status_code == 401
    assert str(info.value) == "claude-opus: anthropic answered HTTP 401: invalid x-api-key"


def test_anthropic_overloaded_529_is_a_5xx_status(server: LLMServer) -> None:
    server.set_behavior("claude-opus-4-1", fail(529, retry_after="3"))
    with pytest.raises(HttpStatusError) as info:
        AnthropicMessagesProvider().complete(anthropic_spec(server), "hi", ANTHROPIC_KEY)
    assert (info.value.status_code, info.value.retry_after) == (529, 3.0)
    assert not is_business_error(info.value)


def test_anthropic_joins_text_blocks_and_ignores_others(server: LLMServer) -> None:
    blocks = [
        {"type": "thinking", "thinking": "hmm"},
        {"type": "text", "text": "Hello, "},
        {"type": "text", "text": "world"},
    ]
    server.set_behavior("claude-opus-4-1", raw(json.dumps({"type": "message", "content": blocks})))
    answer = AnthropicMessagesProvider().complete(anthropic_spec(server), "hi", ANTHROPIC_KEY)
    assert answer == "Hello, world"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"type": "message"}', "claude-opus: anthropic answer has no content list"),
        (
            '{"content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}',
            "claude-opus: anthropic answer has no text block",
        ),
        ("[]", "claude-opus: anthropic answer has no content list"),
    ],
)
def test_anthropic_unusable_answer_is_malformed(server: LLMServer, body: str, message: str) -> None:
    server.set_behavior("claude-opus-4-1", raw(body))
    with pytest.raises(MalformedResponse) as info:
        AnthropicMessagesProvider().complete(anthropic_spec(server), "hi", ANTHROPIC_KEY)
    assert str(info.value) == message


# -- the server validates like the real APIs ------------------------------------------------------


def test_server_rejects_missing_anthropic_version(server: LLMServer) -> None:
    resp = requests.post(
        f"{server.url}/v1/messages",
        headers={"x-api-key": ANTHROPIC_KEY},
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        timeout=2,
    )
    assert resp.status_code == 400
    assert resp.json() == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "anthropic-version: header is required",
        },
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "at least one message"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "x"}]},
            "user role",
        ),
        ({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": 3}]}, "content"),
    ],
)
def test_server_rejects_malformed_anthropic_bodies(
    server: LLMServer, body: dict[str, Any], message: str
) -> None:
    resp = requests.post(
        f"{server.url}/v1/messages",
        headers={"x-api-key": ANTHROPIC_KEY, "anthropic-version": ANTHROPIC_VERSION},
        json=body,
        timeout=2,
    )
    assert resp.status_code == 400
    assert message in resp.json()["error"]["message"]
    assert server.requests_for("m") == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (None, None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": "x"}, "messages"),
        ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "messages"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            "max_tokens",
        ),
    ],
)
def test_server_rejects_malformed_openai_bodies(
    server: LLMServer, body: dict[str, Any] | None, param: str | None
) -> None:
    resp = requests.post(
        f"{server.openai_base_url}/chat/completions",
        headers={"Authorization": f"Bearer {OPENAI_KEY}"},
        json=body,
        timeout=2,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == param
    assert resp.json()["error"]["type"] == "invalid_request_error"


def test_server_unknown_route_is_404(server: LLMServer) -> None:
    resp = requests.post(f"{server.url}/v1/completions", json={}, timeout=2)
    assert resp.status_code == 404
    assert requests.get(f"{server.url}/health", timeout=2).json() == {"status": "ok"}


# -- sessions --------------------------------------------------------------------------------------


class CountingSessions:
    def __init__(self) -> None:
        self.made: list[requests.Session] = []

    def __call__(self) -> requests.Session:
        session = requests.Session()
        self.made.append(session)
        return session


def test_session_is_created_on_first_use_and_reused(server: LLMServer) -> None:
    sessions = CountingSessions()
    providers = make_providers(sessions)
    assert sessions.made == []
    provider = providers["openai"]
    provider.complete(openai_spec(server), "a", OPENAI_KEY)
    provider.complete(openai_spec(server), "b", OPENAI_KEY)
    assert len(sessions.made) == 1
    providers["anthropic"].complete(anthropic_spec(server), "c", ANTHROPIC_KEY)
    assert len(sessions.made) == 2  # one session per provider


def test_close_drops_the_session_and_next_call_makes_a_new_one(server: LLMServer) -> None:
    sessions = CountingSessions()
    provider = OpenAIChatProvider(sessions)
    provider.close()  # closing before first use is harmless
    provider.complete(openai_spec(server), "a", OPENAI_KEY)
    provider.close()
    provider.complete(openai_spec(server), "b", OPENAI_KEY)
    assert len(sessions.made) == 2
    assert isinstance(provider, HttpProvider)


# -- API keys --------------------------------------------------------------------------------------


def test_api_key_is_read_from_the_environment_at_call_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = DEFAULT_MODEL_TABLE.spec("gpt-4o")
    monkeypatch.setenv("OPENAI_API_KEY", " sk-live ")
    assert api_key_for(spec) == "sk-live"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-rotated")
    assert api_key_for(spec) == "sk-rotated"


@pytest.mark.parametrize("environ", [{}, {"ANTHROPIC_API_KEY": "  "}])
def test_missing_or_blank_api_key_is_a_config_error(environ: dict[str, str]) -> None:
    with pytest.raises(MissingApiKey) as info:
        api_key_for(DEFAULT_MODEL_TABLE.spec("claude-opus"), environ)
    assert isinstance(info.value, ConfigError)
    assert str(info.value) == (
        "model 'claude-opus': API key environment variable ANTHROPIC_API_KEY is not set"
    )


def test_keyless_model_needs_no_key() -> None:
    assert api_key_for(DEFAULT_MODEL_TABLE.spec("local-llm"), {}) is None


# -- the model table -------------------------------------------------------------------------------


def test_default_table_holds_the_seed_models() -> None:
    assert DEFAULT_MODEL_TABLE.names == DEFAULT_CHAIN
    assert DEFAULT_CHAIN == ("gpt-4o-mini", "gpt-4o", "claude-opus", "local-llm")
    opus = DEFAULT_MODEL_TABLE.spec("claude-opus")
    assert (opus.provider, opus.base_url, opus.api_key_env) == (
        "anthropic",
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
    )
    local = DEFAULT_MODEL_TABLE.spec("local-llm")
    assert (local.provider, local.base_url, local.api_key_env) == (
        "openai",
        "http://127.0.0.1:8080/v1",
        None,
    )
    for name in ("gpt-4o-mini", "gpt-4o"):
        spec = DEFAULT_MODEL_TABLE.spec(name)
        assert (spec.base_url, spec.api_key_env) == ("https://api.openai.com/v1", "OPENAI_API_KEY")


def test_table_is_immutable() -> None:
    with pytest.raises(TypeError):
        DEFAULT_MODEL_TABLE.specs["x"] = DEFAULT_MODEL_TABLE.spec("gpt-4o")  # type: ignore[index]


def test_overlay_changes_only_named_fields_and_adds_models() -> None:
    table = load_model_table(
        {
            "models": {
                "local-llm": {"base_url": "http://10.0.0.5:8080/v1/", "timeout": 5},
                "mistral-small": {
                    "provider": "openai",
                    "base_url": "https://api.mistral.ai/v1",
                    "api_key_env": "MISTRAL_API_KEY",
                },
            }
        }
    )
    assert table.spec("local-llm") == ModelSpec(
        "local-llm", "openai", "http://10.0.0.5:8080/v1", "local-llm", None, 5.0, 1024
    )
    assert table.spec("mistral-small") == ModelSpec(
        "mistral-small", "openai", "https://api.mistral.ai/v1", "mistral-small", "MISTRAL_API_KEY"
    )
    assert table.spec("gpt-4o") is DEFAULT_MODEL_TABLE.spec("gpt-4o")
    assert "local-llm" in DEFAULT_MODEL_TABLE
    assert DEFAULT_MODEL_TABLE.spec("local-llm").base_url == "http://127.0.0.1:8080/v1"


def test_empty_base_replaces_the_defaults() -> None:
    table = load_model_table(
        {"models": {"only": {"provider": "anthropic", "base_url": "http://127.0.0.1:1"}}},
        base=ModelTable(),
    )
    assert table.names == ("only",)


def test_yaml_and_json_files_load(tmp_path: Path) -> None:
    yaml_file = tmp_path / "models.yaml"
    yaml_file.write_text(
        "models:\n  claude-opus:\n    model: claude-opus-4-5\n    max_tokens: 2048\n"
    )
    json_file = tmp_path / "models.json"
    json_file.write_text(json.dumps({"models": {"gpt-4o": {"timeout": 12.5}}}))
    assert load_model_table(yaml_file).spec("claude-opus").model == "claude-opus-4-5"
    assert load_model_table(yaml_file).spec("claude-opus").max_tokens == 2048
    assert load_model_table(str(json_file)).spec("gpt-4o").timeout == 12.5


def test_model_table_env_points_at_a_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("models:\n  local-llm:\n    base_url: http://127.0.0.1:9999/v1\n")
    assert model_table({}) is DEFAULT_MODEL_TABLE
    table = model_table({MODEL_TABLE_ENV: str(path)})
    assert table.spec("local-llm").base_url == "http://127.0.0.1:9999/v1"


E = "model table: model 'gpt-4o'"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"provider": "azure"},
            f"{E}: field 'provider' must be one of 'anthropic', 'openai'; got 'azure'",
        ),
        (
            {"base_url": "ftp://x"},
            f"{E}: field 'base_url' must be an http:// or https:// URL without query or "
            "fragment; got 'ftp://x'",
        ),
        (
            {"timeout": 0},
            f"{E}: field 'timeout' must be a number of seconds in (0, 600]; got 0",
        ),
        (
            {"timeout": "30"},
            f"{E}: field 'timeout' must be a number of seconds in (0, 600]; got '30'",
        ),
        (
            {"timeout": 601},
            f"{E}: field 'timeout' must be a number of seconds in (0, 600]; got 601",
        ),
        (
            {"timeout": True},
            f"{E}: field 'timeout' must be a number of seconds in (0, 600]; got True",
        ),
        (
            {"api_key_env": "OPENAI-KEY"},
            f"{E}: field 'api_key_env' must be null or an environment variable name like "
            "OPENAI_API_KEY; got 'OPENAI-KEY'",
        ),
        (
            {"model": " "},
            f"{E}: field 'model' must be a non-empty string (the provider's model id); got ' '",
        ),
        ({"max_tokens": 0}, f"{E}: field 'max_tokens' must be a positive integer; got 0"),
        (
            {"api_key": "sk-123"},
            f"{E}: unknown field 'api_key'; allowed: provider, base_url, model, api_key_env, "
            "timeout, max_tokens",
        ),
        (
            "gpt-4o",
            f"{E}: settings must be a mapping of provider, base_url, model, api_key_env, "
            "timeout, max_tokens",
        ),
    ],
)
def test_invalid_entries_name_model_field_and_allowed_values(entry: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_model_table({"models": {"gpt-4o": entry}})
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"model": {}}, "model table: expected a mapping with the single key 'models'"),
        ({"models": ["gpt-4o"]}, "model table: 'models' must map model names to their settings"),
        (
            {"models": {"new-model": {"base_url": "http://127.0.0.1:1"}}},
            "model table: model 'new-model': missing required field 'provider' "
            "(a new model needs provider and base_url)",
        ),
        (
            {"models": {"": {}}},
            "model table: model names must be non-empty strings, got ''",
        ),
    ],
)
def test_invalid_documents(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_model_table(document)
    assert str(info.value) == message


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError, match=r"absent\.yaml: cannot read model table: "):
        load_model_table(missing)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json: not valid JSON: "):
        load_model_table(bad)
    toml = tmp_path / "models.toml"
    toml.write_text("")
    with pytest.raises(ConfigError) as info:
        load_model_table(toml)
    assert str(info.value) == (
        f"{toml}: unsupported model table format '.toml'; use .yaml, .yml or .json"
    )
    listing = tmp_path / "list.yaml"
    listing.write_text("- gpt-4o\n")
    with pytest.raises(ConfigError) as info:
        load_model_table(listing)
    assert str(info.value) == f"{listing}: expected a mapping with the single key 'models'"
    entry = tmp_path / "entry.yaml"
    entry.write_text("models:\n  gpt-4o:\n    timeout: -1\n")
    with pytest.raises(ConfigError) as info:
        load_model_table(entry)
    assert str(info.value) == (
        f"{entry}: model 'gpt-4o': field 'timeout' must be a number of seconds in (0, 600]; got -1"
    )


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([], "a fallback chain needs at least one model"),
        (
            ["gpt-4o", "gpt-5"],
            "unknown model 'gpt-5'; known models: claude-opus, gpt-4o, gpt-4o-mini, local-llm",
        ),
        (["gpt-4o", "local-llm", "gpt-4o"], "model 'gpt-4o' appears twice in the fallback chain"),
        ("gpt-4o", "models must be a sequence of model names, not the string 'gpt-4o'"),
    ],
)
def test_chain_validation(models: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        DEFAULT_MODEL_TABLE.chain(models)
    assert str(info.value) == message
