"""Fuzzing both functions in-process beyond what the contract describes: no 5xx except injected
ones (marked by the header), and every bad input is a JSON 4xx naming the parameter.

Schemathesis (``test_schemathesis.py``) fuzzes what ``openapi/chaos.yaml`` describes (parameters,
JSON bodies, path parameters; valid and invalid). What stays here is what a schema cannot
describe: repeated and oddly named query keys, bodies that are not JSON at all, and arbitrary
paths outside every documented route."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import urlencode

import functions_framework
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from shared.chaos.experiments import MemoryExperimentStore
from shared.chaos.params import DELAY_PARAMETERS, PROXY_PARAMETERS
from shared.chaos.runtime import use_runtime
from shared.resilience.clock import FakeClock

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

_CLIENTS: dict[str, FlaskClient] = {}


def client(name: str) -> FlaskClient:
    if name not in _CLIENTS:
        app = functions_framework.create_app(target=name, source=f"functions/{name}/main.py")
        _CLIENTS[name] = app.test_client()
    return _CLIENTS[name]


@pytest.fixture(autouse=True)
def instant_runtime(chaos_env: pytest.MonkeyPatch) -> Iterator[None]:
    """Sleeps are instant (a fuzzed d=10000 or a drop costs nothing); experiments in memory."""
    assert os.environ["CHAOS_ENABLED"] == "true"
    with use_runtime(clock=FakeClock(), store=MemoryExperimentStore()):
        yield


def scalar_text() -> st.SearchStrategy[str]:
    numbers = st.one_of(
        st.integers(-(10**20), 10**20).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.sampled_from(["", "0", "1", "0.5", "1e3", "-0", "+1", "0x10", "1_000", " 1", "NaN"]),
    )
    return st.one_of(numbers, st.text(max_size=12))


def params(names: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, str]]]:
    keys = st.one_of(
        st.sampled_from(names), st.sampled_from(["mode", "x", "P", ""]), st.text(max_size=6)
    )
    return st.lists(st.tuples(keys, scalar_text()), max_size=5)


def check(response: TestResponse) -> None:
    status = response.status_code
    injected = response.headers.get("X-Chaos-Injected") == "true"
    body = response.get_json(silent=True)
    assert isinstance(body, dict), response.get_data()[:200]
    assert len(response.headers["X-Trace-Id"]) == 32
    if status >= 500:
        assert injected, (status, body)
    elif 400 <= status < 500:
        assert not injected
        assert body["error"] in ("invalid_parameter", "method_not_allowed", "not_found",
                                 "unknown_upstream"), body  # fmt: skip
        if body["error"] == "invalid_parameter":
            assert isinstance(body["parameter"], str)
            assert body["allowed"]
            assert body["parameter"] in body["message"]
    else:
        assert status == 200, (status, body)
        assert body["ok"] is True


@FUZZ
@given(query=params(DELAY_PARAMETERS))
def test_delay_query_strings(query: list[tuple[str, str]]) -> None:
    check(client("chaos_delay").get("/chaos_delay", query_string=urlencode(query)))


@FUZZ
@given(raw=st.binary(max_size=64))
def test_delay_raw_bodies(raw: bytes) -> None:
    check(client("chaos_delay").post("/", data=raw, content_type="application/json"))


@FUZZ
@given(query=params(PROXY_PARAMETERS))
def test_proxy_mode_query_strings(query: list[tuple[str, str]]) -> None:
    check(client("chaos_proxy").get("/chaos_proxy", query_string=urlencode(query)))


@FUZZ
@given(
    path=st.lists(
        # Printable ASCII only: control characters cannot appear in an HTTP request target
        # (RFC 9112), and the test client's URL parser strips some of them (turning "/\n/" into
        # "//", which the framework redirects before our handler runs).
        st.text(
            alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters="?#"),
            max_size=8,
        ),
        max_size=4,
    ).map(lambda parts: "/" + "/".join(parts)),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]),
)
def test_proxy_paths(path: str, method: str) -> None:
    # functions-framework's Flask routing answers "//" with a 308 to the merged path before our
    # handler runs; that is the framework's, not ours.
    assume("//" not in path)
    # No upstream configured: every path is a route of ours or a 404 naming none configured.
    response = client("chaos_proxy").open(path, method=method, data=json.dumps({}))
    if response.status_code == 201:  # POST /_experiments with {} cannot succeed
        raise AssertionError(response.get_json())
    check(response)
