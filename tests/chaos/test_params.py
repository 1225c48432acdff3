"""Parameter validation: defaults, ranges, and the exact error for every kind of bad input."""

from __future__ import annotations

import pytest

from shared.chaos.errors import InvalidParameter
from shared.chaos.params import (
    DEFAULT_SLOW_MS,
    DelayParams,
    ExperimentSpec,
    ProxyParams,
    StopSelector,
    parse_delay_params,
    parse_experiment_spec,
    parse_list_limit,
    parse_proxy_params,
    parse_stop_selector,
)

CAP = 10_000


def test_delay_defaults() -> None:
    assert parse_delay_params({}, max_delay_ms=CAP) == DelayParams(0.2, 300, 500, None, 1)


def test_delay_accepts_query_strings_and_json_numbers_alike() -> None:
    from_query = parse_delay_params(
        {"p": "0.5", "d": "20", "status": "429", "seed": "7", "retry_after": "3"}, max_delay_ms=CAP
    )
    from_json = parse_delay_params(
        {"p": 0.5, "d": 20, "status": 429, "seed": 7, "retry_after": 3}, max_delay_ms=CAP
    )
    assert from_query == from_json == DelayParams(0.5, 20, 429, 7, 3)


@pytest.mark.parametrize("p", ["0", "1", "0.0", "1.0", "1e-3", ".5", 0, 1, 0.25])
def test_probability_bounds_are_inclusive(p: object) -> None:
    assert 0.0 <= parse_delay_params({"p": p}, max_delay_ms=CAP).p <= 1.0


@pytest.mark.parametrize(
    "bad", ["-0.1", "1.01", "abc", "", "nan", "inf", "1_0", " 0.5", True, None, [0.5], "0x1", 2]
)
def test_bad_probability_names_p_and_its_range(bad: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_delay_params({"p": bad}, max_delay_ms=CAP)
    assert info.value.parameter == "p"
    assert info.value.allowed == "0.0..1.0"
    assert str(info.value).startswith("p must be a number between 0 and 1; got ")


@pytest.mark.parametrize("huge", [10**400, -(10**400), 10**309])
def test_a_json_integer_beyond_any_float_is_a_bad_p(huge: int) -> None:
    # Defect 3 of issue 12: float(10**400) raised OverflowError, answered as a 500.
    with pytest.raises(InvalidParameter) as info:
        parse_delay_params({"p": huge}, max_delay_ms=CAP)
    assert (info.value.parameter, info.value.allowed) == ("p", "0.0..1.0")
    assert str(info.value).endswith("...")  # the echoed value is cut short


@pytest.mark.parametrize("bad", ["-1", "1.5", "10001", "abc", "", 300.5, False, "9" * 50, "1e3"])
def test_bad_delay_names_d_and_the_cap(bad: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_delay_params({"d": bad}, max_delay_ms=CAP)
    assert (info.value.parameter, info.value.allowed) == ("d", "0..10000")
    assert "d must be an integer between 0 and 10000" in str(info.value)


def test_delay_cap_is_configurable_and_bounds_the_default() -> None:
    assert parse_delay_params({"d": "50"}, max_delay_ms=50).d_ms == 50
    with pytest.raises(InvalidParameter, match="between 0 and 50"):
        parse_delay_params({"d": "51"}, max_delay_ms=50)
    assert parse_delay_params({}, max_delay_ms=100).d_ms == 100


def test_integral_float_delay_is_accepted() -> None:
    assert parse_delay_params({"d": 300.0}, max_delay_ms=CAP).d_ms == 300


@pytest.mark.parametrize("bad", ["418", "200", "5OO", 500.5, "", None])
def test_unknown_status_lists_the_injectable_ones(bad: object) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_delay_params({"status": bad}, max_delay_ms=CAP)
    assert info.value.allowed == "429|500|502|503|504"
    assert "status must be one of 429|500|502|503|504" in str(info.value)


def test_unknown_parameter_is_named_with_the_known_ones() -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_delay_params({"prob": "0.5"}, max_delay_ms=CAP)
    assert info.value.parameter == "prob"
    assert info.value.allowed == "p, d, status, seed, retry_after"


def test_seed_and_retry_after_ranges() -> None:
    with pytest.raises(InvalidParameter, match="seed must be an integer between 0 and"):
        parse_delay_params({"seed": "-1"}, max_delay_ms=CAP)
    with pytest.raises(InvalidParameter, match="retry_after must be an integer between 0 and 3600"):
        parse_delay_params({"retry_after": "3601"}, max_delay_ms=CAP)


def test_proxy_params() -> None:
    assert parse_proxy_params({}, max_delay_ms=CAP) == ProxyParams("ok", DEFAULT_SLOW_MS)
    assert parse_proxy_params({"mode": "slow", "slow_ms": "250"}, max_delay_ms=CAP) == ProxyParams(
        "slow", 250
    )
    # The default slow delay obeys a lower cap.
    assert parse_proxy_params({"mode": "slow"}, max_delay_ms=1000).slow_ms == 1000
    with pytest.raises(InvalidParameter, match=r"mode must be one of ok\|drop\|slow\|error"):
        parse_proxy_params({"mode": "OK"}, max_delay_ms=CAP)
    with pytest.raises(InvalidParameter, match="slow_ms must be an integer between 0 and 10000"):
        parse_proxy_params({"mode": "slow", "slow_ms": "10001"}, max_delay_ms=CAP)


def test_experiment_spec() -> None:
    spec = parse_experiment_spec(
        {"upstream": "llm", "mode": "error", "duration_s": 900},
        upstreams=("llm", "db"),
        max_delay_ms=CAP,
    )
    assert spec == ExperimentSpec("llm", "error", 900, DEFAULT_SLOW_MS)
    slow = parse_experiment_spec(
        {"upstream": "db", "mode": "slow", "duration_s": "60", "slow_ms": 1500},
        upstreams=("llm", "db"),
        max_delay_ms=CAP,
    )
    assert slow.slow_ms == 1500


@pytest.mark.parametrize(
    ("body", "parameter", "text"),
    [
        ({"mode": "error", "duration_s": 60}, "upstream", "upstream is required; got None"),
        (
            {"upstream": "_x", "mode": "error", "duration_s": 60},
            "upstream",
            "upstream must match [a-z0-9][a-z0-9_-]{0,62}; got _x",
        ),
        (
            {"upstream": "llm", "mode": "ok", "duration_s": 60},
            "mode",
            "mode must be one of drop|slow|error; got ok",
        ),
        (
            {"upstream": "llm", "mode": "error", "duration_s": 0},
            "duration_s",
            "duration_s must be an integer between 1 and 14400; got 0",
        ),
        (
            {"upstream": "llm", "mode": "error", "duration_s": 60, "slow_ms": 5},
            "slow_ms",
            "slow_ms applies only to mode slow; got 5",
        ),
        (
            {"upstream": "llm", "mode": "error", "duration_s": 60, "extra": 1},
            "extra",
            "unknown parameter 'extra'; known parameters: upstream, mode, duration_s, slow_ms, "
            "name; got extra",
        ),
    ],
)
def test_experiment_spec_errors(body: dict[str, object], parameter: str, text: str) -> None:
    with pytest.raises(InvalidParameter) as info:
        parse_experiment_spec(body, upstreams=("llm", "db"), max_delay_ms=CAP)
    assert info.value.parameter == parameter
    assert str(info.value) == text


def test_list_limit() -> None:
    assert parse_list_limit({}) == 100
    assert parse_list_limit({"limit": "5"}) == 5
    with pytest.raises(InvalidParameter, match="limit must be an integer between 1 and 500"):
        parse_list_limit({"limit": "0"})


def test_experiment_name_and_stop_selector() -> None:
    named = parse_experiment_spec(
        {"upstream": "llm", "mode": "error", "duration_s": 60, "name": "llm-outage_1"},
        upstreams=("llm",),
        max_delay_ms=CAP,
    )
    assert named.name == "llm-outage_1"
    assert parse_stop_selector({}) == StopSelector(None, None)
    assert parse_stop_selector({"upstream": "llm", "name": "x"}) == StopSelector("llm", "x")
    for field, bad in [("name", "_x"), ("name", "A"), ("name", ""), ("upstream", "a" * 64),
                       ("name", 5)]:  # fmt: skip
        with pytest.raises(InvalidParameter) as info:
            parse_stop_selector({field: bad})
        assert (info.value.parameter, info.value.allowed) == (field, "[a-z0-9][a-z0-9_-]{0,62}")
    with pytest.raises(InvalidParameter, match="name must match"):
        parse_experiment_spec(
            {"upstream": "llm", "mode": "error", "duration_s": 60, "name": "Bad Name"},
            upstreams=("llm",),
            max_delay_ms=CAP,
        )
    with pytest.raises(InvalidParameter, match="unknown parameter 'id'"):
        parse_stop_selector({"id": "x"})


def test_a_well_formed_upstream_that_is_not_configured_is_unknown() -> None:
    from shared.chaos.errors import UnknownUpstream

    with pytest.raises(UnknownUpstream) as info:
        parse_experiment_spec(
            {"upstream": "x", "mode": "error", "duration_s": 60}, upstreams=("llm", "db"),
            max_delay_ms=CAP,
        )  # fmt: skip
    assert info.value.details() == {"upstream": "x", "configured": ["db", "llm"]}
