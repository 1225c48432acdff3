"""Configuration from the environment: kill switch, auth mode, caps, upstreams, read once."""

from __future__ import annotations

import logging

import pytest

from shared.chaos.config import (
    Upstream,
    kill_switch,
    parse_upstreams,
    settings,
    settings_from_env,
)
from shared.settings import SettingsError, reset_settings


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, False), ("", False), ("false", False), ("0", False), ("yes", False), ("on", False),
     ("true", True), ("TRUE", True), (" true ", True), ("1", True)],
)  # fmt: skip
def test_kill_switch_is_off_unless_explicitly_true(value: str | None, enabled: bool) -> None:
    on, reason = kill_switch(value)
    assert on is enabled
    assert (reason == "") is enabled
    if not enabled:
        assert "CHAOS_ENABLED" in reason
    # A bad kill switch value is "off", never a configuration error (stopping must keep working).
    assert settings_from_env({} if value is None else {"CHAOS_ENABLED": value}).enabled is enabled


def test_auth_defaults_to_firebase_only_when_deployed() -> None:
    assert settings_from_env({}).auth == "none"
    assert settings_from_env({"K_SERVICE": "chaos_proxy"}).auth == "firebase"
    assert settings_from_env({"K_SERVICE": "x", "CHAOS_AUTH": "iam"}).auth == "iam"
    with pytest.raises(SettingsError, match=r"CHAOS_AUTH='basic': must be one of firebase, iam"):
        settings_from_env({"CHAOS_AUTH": "basic"})


def test_defaults() -> None:
    s = settings_from_env({"THREADS": "64"})
    assert (s.enabled, s.auth, s.deployed) == (False, "none", False)
    assert (s.max_delay_ms, s.drop_hold_s, s.upstream_timeout_s) == (10_000, 30.0, 30.0)
    assert s.experiment_cache_ttl_s == 2.0
    assert s.upstream_names == ()
    assert s.max_held_drops == 32  # half the request threads


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [("CHAOS_MAX_DELAY_MS", "0", "an integer from 1 to 1800000"),
     ("CHAOS_MAX_DELAY_MS", "ten", "an integer from 1 to 1800000"),
     ("CHAOS_DROP_HOLD_S", "-1", "a number from 0.001 to 3600"),
     ("CHAOS_DROP_HOLD_S", "nan", "a number from 0.001 to 3600"),
     ("CHAOS_UPSTREAM_TIMEOUT_S", "0", "a number from 0.001 to 3600"),
     ("CHAOS_EXPERIMENT_CACHE_TTL_S", "61", "a number from 0 to 60"),
     ("CHAOS_MAX_HELD_DROPS", "8", "an integer from 0 to 7")],
)  # fmt: skip
def test_bad_numbers_name_the_variable_and_range(name: str, value: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as info:
        settings_from_env({name: value, "THREADS": "8"})
    [problem] = info.value.problems
    assert (problem.name, problem.value, problem.allowed) == (name, value, allowed)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(SettingsError) as info:
        settings_from_env({"CHAOS_MAX_DELAY_MS": "x", "CHAOS_UPSTREAMS": "llm", "CHAOS_AUTH": "?"})
    assert [p.name for p in info.value.problems] == [
        "CHAOS_AUTH",
        "CHAOS_MAX_DELAY_MS",
        "CHAOS_UPSTREAMS",
    ]


@pytest.mark.parametrize("variable", ["FIREBASE_AUTH_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST"])
def test_emulator_variables_are_refused_when_deployed(variable: str) -> None:
    # Locally they are how the stack and the tests reach the emulators.
    assert settings_from_env({variable: "127.0.0.1:9099"}).deployed is False
    with pytest.raises(SettingsError) as info:
        settings_from_env({"K_SERVICE": "chaos_proxy", variable: "127.0.0.1:9099"})
    [problem] = info.value.problems
    assert (problem.name, problem.allowed) == (variable, "unset when deployed (K_SERVICE is set)")


def test_settings_are_read_once_until_reset(
    chaos_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="shared.chaos.config"):
        first = settings()
    assert settings() is first
    assert "CHAOS_AUTH is none" in caplog.text  # the loud start-up warning
    chaos_env.setenv("CHAOS_MAX_DELAY_MS", "50")
    assert settings().max_delay_ms == 10_000  # one read per instance
    reset_settings()
    assert settings().max_delay_ms == 50
    chaos_env.setenv("CHAOS_MAX_DELAY_MS", "lots")
    reset_settings()
    with pytest.raises(SettingsError, match="CHAOS_MAX_DELAY_MS"):
        settings()


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
    with pytest.raises(TypeError):
        parse_upstreams("a=http://x")["b"] = Upstream("b", "http://x")  # type: ignore[index]


@pytest.mark.parametrize(
    "raw",
    ["{not json", "[1]", "llm", "LLM=http://x", "_x=http://x", "chaos_proxy=http://x",
     "llm=ftp://x", "llm=http://", "llm=http://x/?q=1", '{"llm": 5}', "a=http://x,a=http://y"],
)  # fmt: skip
def test_bad_upstreams_are_settings_errors(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_upstreams(raw)
    with pytest.raises(SettingsError, match="CHAOS_UPSTREAMS") as info:
        settings_from_env({"CHAOS_UPSTREAMS": raw})
    assert "http(s)://host[:port][/prefix]" in info.value.problems[0].allowed
