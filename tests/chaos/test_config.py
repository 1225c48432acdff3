"""Configuration from the environment: kill switch, auth mode, caps, upstreams."""

from __future__ import annotations

import pytest

from shared.chaos.config import Upstream, auth_mode, kill_switch, parse_upstreams, settings_from_env
from shared.chaos.errors import ConfigurationError


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, False), ("", False), ("false", False), ("0", False), ("yes", False), ("on", False),
     ("true", True), ("TRUE", True), (" true ", True), ("1", True)],
)  # fmt: skip
def test_kill_switch_is_off_unless_explicitly_true(value: str | None, enabled: bool) -> None:
    env = {} if value is None else {"CHAOS_ENABLED": value}
    on, reason = kill_switch(env)
    assert on is enabled
    assert (reason == "") is enabled
    if not enabled:
        assert "CHAOS_ENABLED" in reason


def test_auth_defaults_to_firebase_only_when_deployed() -> None:
    assert auth_mode({}, deployed=False) == "none"
    assert auth_mode({}, deployed=True) == "firebase"
    assert settings_from_env({"K_SERVICE": "chaos_proxy"}).auth == "firebase"
    assert settings_from_env({"K_SERVICE": "x", "CHAOS_AUTH": "iam"}).auth == "iam"
    with pytest.raises(ConfigurationError, match=r"CHAOS_AUTH must be firebase\|iam\|none"):
        auth_mode({"CHAOS_AUTH": "basic"}, deployed=False)


def test_defaults() -> None:
    s = settings_from_env({})
    assert (s.enabled, s.auth, s.deployed) == (False, "none", False)
    assert (s.max_delay_ms, s.drop_hold_s, s.upstream_timeout_s) == (10_000, 30.0, 30.0)
    assert s.experiment_cache_ttl_s == 2.0
    assert s.upstream_names == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [("CHAOS_MAX_DELAY_MS", "0"), ("CHAOS_MAX_DELAY_MS", "ten"), ("CHAOS_DROP_HOLD_S", "-1"),
     ("CHAOS_DROP_HOLD_S", "nan"), ("CHAOS_UPSTREAM_TIMEOUT_S", "0"),
     ("CHAOS_EXPERIMENT_CACHE_TTL_S", "61")],
)  # fmt: skip
def test_bad_numbers_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=f"environment variable {name} must be"):
        settings_from_env({name: value})


def test_upstreams_in_both_formats() -> None:
    expected = {
        "llm": Upstream("llm", "http://127.0.0.1:8084"),
        "db-2": Upstream("db-2", "https://db.internal/api"),
    }
    assert parse_upstreams(
        '{"llm": "http://127.0.0.1:8084/", "db-2": "https://db.internal/api"}'
    ) == (expected)
    assert parse_upstreams(" llm=http://127.0.0.1:8084 , db-2=https://db.internal/api/ ,") == (
        expected
    )
    assert parse_upstreams("") == {}


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[1]", "llm", "LLM=http://x", "_x=http://x", "chaos_proxy=http://x",
     "llm=ftp://x", "llm=http://", "llm=http://x/?q=1", '{"llm": 5}', "a=http://x,a=http://y"],
)  # fmt: skip
def test_bad_upstreams_are_configuration_errors(raw: str) -> None:
    with pytest.raises(ConfigurationError, match="CHAOS_UPSTREAMS"):
        parse_upstreams(raw)


def test_upstreams_parse_is_cached_per_value_and_read_only() -> None:
    first = parse_upstreams("a=http://127.0.0.1:1")
    assert parse_upstreams("a=http://127.0.0.1:1") is first
    assert parse_upstreams("a=http://127.0.0.1:2")["a"].base_url.endswith(":2")
    with pytest.raises(TypeError):
        first["b"] = Upstream("b", "http://x")  # type: ignore[index]
