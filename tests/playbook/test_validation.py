"""Every malformed fixture fails validation with this exact message; nothing runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.playbook import PlaybookInvalid, load_playbook
from tests.playbook import steps
from tests.playbook.conftest import ALLOWED, FIXTURES

ERRORS = {
    "missing-title": "title: is required",
    "unknown-top-level": (
        "playbook: unknown field 'steady-state-hypothesis'; allowed: configuration, description, "
        "hypothesis, method, rollbacks, success_criteria, tags, title"
    ),
    "empty-method": "method: must be a non-empty list; got an empty list",
    "bad-provider-type": (
        "method[1].provider.type: must be one of http, load, python, sleep; got 'shell'"
    ),
    "bad-argument": (
        "method[2].provider.arguments.mode: tests.playbook.steps.act has no parameter 'mode'; "
        "it accepts: label"
    ),
    "python-outside-shared": (
        "method[0].provider.func: must be a dotted function path under shared., "
        "tests.playbook.; got 'os.system'"
    ),
    "python-missing-function": (
        "method[0].provider.func: module 'tests.playbook.steps' has no function 'nope'; "
        "it has: act, boom, interrupt, metrics, names, value"
    ),
    "python-missing-argument": (
        "method[0].provider.arguments.of: is required by tests.playbook.steps.value"
    ),
    "bad-timeout": "method[0].provider.timeout_s: must be a number of seconds in (0, 300]; got -1",
    "remote-load": (
        "method[0].provider.url: load may only target loopback hosts (127.0.0.1, ::1, localhost) "
        "unless allow_remote is true; got 'https://example.com/'"
    ),
    "load-over-cap": (
        "method[0].provider: rate_rps x duration_s is 3600000 requests, above the hard cap of "
        "100000; lower them or set max_requests"
    ),
    "bad-tolerance-op": (
        "hypothesis.probes[0].tolerance.op: must be one of >, >=, <, <=, ==, !=; got '=>'"
    ),
    "bad-tolerance-range": "hypothesis.probes[0].tolerance: low 5 is above high 1",
    "hypothesis-without-tolerance": (
        "hypothesis.probes[0].tolerance: is required for a hypothesis probe"
    ),
    "unknown-variable": (
        "method[0].provider.url: unknown configuration variable ${proxy_ur}; defined: proxy_url"
    ),
    "criterion-unknown-probe": (
        "success_criteria[0].probe: must be the name of a method probe (measure); got 'mesure'"
    ),
    "duplicate-names": (
        "method[1].name: duplicate name 'nap' (also at method[0]); activity names must be unique"
    ),
    "rollback-probe": "rollbacks[0].type: must be 'action'; got 'probe'",
    "bad-env-value": (
        "configuration.duration_s: $PLAYBOOK_TEST_DURATION_S='soon' must be an integer like "
        "the default 900"
    ),
}


def _load(name: str) -> None:
    load_playbook(
        FIXTURES / f"{name}.yaml",
        allowed_modules=ALLOWED,
        environ={"PLAYBOOK_TEST_DURATION_S": "soon"},
    )


@pytest.mark.parametrize(("fixture", "message"), sorted(ERRORS.items()))
def test_malformed_fixture_is_rejected_with_exact_message(fixture: str, message: str) -> None:
    path = FIXTURES / f"{fixture}.yaml"
    with pytest.raises(PlaybookInvalid) as caught:
        _load(fixture)
    assert str(caught.value) == f"{path}: {message}"
    assert caught.value.playbook == str(path)
    assert steps.CALLS == []  # validation calls no provider


def test_every_fixture_is_covered() -> None:
    names = {p.stem for p in FIXTURES.glob("*.yaml")}
    assert names - set(ERRORS) == {"valid-minimal", "not-yaml"}


def test_invalid_yaml_names_the_file() -> None:
    with pytest.raises(PlaybookInvalid, match=r"not-yaml\.yaml: not valid YAML: while parsing"):
        _load("not-yaml")


def test_missing_file() -> None:
    with pytest.raises(PlaybookInvalid, match=r"nowhere\.yaml: cannot read: No such file"):
        load_playbook(Path("nowhere.yaml"))


def test_valid_minimal_fixture() -> None:
    playbook = load_playbook(FIXTURES / "valid-minimal.yaml")
    assert playbook.title == "minimal"
    assert playbook.hypothesis is None
    assert [a.name for a in playbook.method] == ["nap"]


def test_python_providers_default_to_shared_only() -> None:
    with pytest.raises(PlaybookInvalid, match=r"must be a dotted function path under shared\.;"):
        load_playbook(FIXTURES / "bad-argument.yaml")


@pytest.mark.parametrize("path", sorted(Path("playbooks").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_playbooks_are_valid(path: Path) -> None:
    playbook = load_playbook(path, environ={})
    assert playbook.success_criteria, "every shipped playbook states its success criteria"
    assert playbook.description


def test_llm_down_defaults_to_a_fifteen_minute_outage() -> None:
    playbook = load_playbook(Path("playbooks/llm-down.yaml"), environ={})
    start = playbook.method[0].provider
    assert start.type == "http"
    assert start.json == {"upstream": "local-llm", "mode": "error", "duration_s": 900}
    assert start.url == "http://127.0.0.1:8082/chaos_proxy/_experiments"
