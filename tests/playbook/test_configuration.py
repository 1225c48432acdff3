"""Configuration values: defaults, environment, --var, typed substitution."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shared.playbook import Playbook, PlaybookInvalid

TEXT = """
title: config
configuration:
  url:
    env: TEST_URL
    default: http://127.0.0.1:8082
  seconds:
    env: TEST_SECONDS
    default: 1.5
  enabled:
    env: TEST_ENABLED
    default: false
  label: plain
method:
  - type: probe
    name: p
    provider:
      type: python
      func: tests.playbook.steps.value
      arguments:
        of:
          url: ${url}/x
          seconds: ${seconds}
          enabled: ${enabled}
          text: "${label}-${seconds}"
          literal: "$${url}"
"""


def _of(playbook: Playbook) -> object:
    provider = playbook.method[0].provider
    assert provider.type == "python"
    return provider.arguments["of"]


def test_defaults_keep_their_types(write_playbook: Callable[..., Playbook]) -> None:
    playbook = write_playbook(TEXT)
    assert _of(playbook) == {
        "url": "http://127.0.0.1:8082/x",
        "seconds": 1.5,
        "enabled": False,
        "text": "plain-1.5",
        "literal": "${url}",
    }
    assert playbook.configuration["seconds"] == 1.5


def test_environment_then_var_override(write_playbook: Callable[..., Playbook]) -> None:
    environ = {"TEST_URL": "http://127.0.0.1:9", "TEST_SECONDS": "2", "TEST_ENABLED": "true"}
    playbook = write_playbook(TEXT, environ=environ, variables={"seconds": "0.25"})
    assert _of(playbook) == {
        "url": "http://127.0.0.1:9/x",
        "seconds": 0.25,
        "enabled": True,
        "text": "plain-0.25",
        "literal": "${url}",
    }


def test_unknown_var_lists_known_names(write_playbook: Callable[..., Playbook]) -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        write_playbook(TEXT, variables={"secs": "1"})
    assert caught.value.path == "--var secs"
    assert caught.value.problem == (
        "not a configuration name of this playbook; known: enabled, label, seconds, url"
    )


def test_bad_boolean_from_var(write_playbook: Callable[..., Playbook]) -> None:
    with pytest.raises(PlaybookInvalid) as caught:
        write_playbook(TEXT, variables={"enabled": "maybe"})
    assert str(caught.value).endswith(
        "configuration.enabled: --var enabled='maybe' must be true or false"
    )
