"""The fallback chain over real HTTP: two local LLM servers play the cloud and local LLMs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from shared.resilience import events
from shared.resilience.circuit import Circuit, breaker
from shared.resilience.clock import FakeClock
from shared.resilience.errors import CircuitOpenError, ConfigError, ResilienceError
from shared.resilience.fallback import (
    AllModelsFailed,
    FallbackChain,
    FallbackResult,
    ModelFailure,
    ask_with_fallback,
    ask_with_fallback_limited,
    breaker_name,
    is_prompt_error,
    registry_breaker,
)
from shared.resilience.llm import (
    DEFAULT_CHAIN,
    MODEL_TABLE_ENV,
    MissingApiKey,
    ModelTable,
    load_model_table,
)
from shared.resilience.llm_providers import make_providers
from shared.resilience.transient import HttpStatusError
from tests.llm_servers import (
    BAD_REQUEST,
    DROP,
    OK,
    RATE_LIMITED,
    SERVER_ERROR,
    UNAVAILABLE,
    Behavior,
    LLMServer,
    answer_text,
    fail,
    slow,
)

OPENAI_KEY = "sk-test-openai-7f3a"
ANTHROPIC_KEY = "sk-ant-test-91cc"
ENV = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
FAIL_MAX = 4
RESET_TIMEOUT = 8.0
#: Client timeout for answers expected to arrive (loopback, but the CI machine may be busy).
TIMEOUT = 3.0
#: Client timeout for the model scripted to be slow.
SHORT_TIMEOUT = 0.3
#: Upstream model ids, as the servers count them.
UPSTREAM = {
    "gpt-4o-mini": "gpt-4o-mini",
    "gpt-4o": "gpt-4o",
    "claude-opus": "claude-opus-4-1",
    "local-llm": "llama-3-8b",
}


@pytest.fixture(scope="module")
def cloud_server() -> Iterator[LLMServer]:
    with LLMServer(openai_key=OPENAI_KEY, anthropic_key=ANTHROPIC_KEY) as server:
        yield server


@pytest.fixture(scope="module")
def local_server() -> Iterator[LLMServer]:
    with LLMServer(openai_key=None, anthropic_key=None) as server:
        yield server


@pytest.fixture
def cloud(cloud_server: LLMServer) -> LLMServer:
    cloud_server.reset()
    cloud_server.max_prompt_chars = None
    return cloud_server


@pytest.fixture
def local(local_server: LLMServer) -> LLMServer:
    local_server.reset()
    local_server.max_prompt_chars = None
    return local_server


def seed_table(cloud: LLMServer, local: LLMServer, **timeouts: float) -> ModelTable:
    """The seed models, pointed at the local servers; ``timeouts`` by model name."""
    entries: dict[str, dict[str, Any]] = {
        "gpt-4o-mini": {"base_url": cloud.openai_base_url},
        "gpt-4o": {"base_url": cloud.openai_base_url},
        "claude-opus": {"base_url": cloud.anthropic_base_url, "max_tokens": 256},
        "local-llm": {"base_url": local.openai_base_url},
    }
    for name, entry in entries.items():
        entry["model"] = UPSTREAM[name]
        entry["timeout"] = timeouts.get(name.replace("-", "_"), TIMEOUT)
    return load_model_table({"models": entries})


class Breakers:
    """A breaker factory with fresh circuits per test on a fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.made: dict[str, Circuit] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str) -> Circuit:
        with self._lock:
            if name not in self.made:
                self.made[name] = Circuit(FAIL_MAX, RESET_TIMEOUT, name=name, clock=self.clock)
            return self.made[name]

    def state(self, model: str) -> str:
        return self(breaker_name(model)).state


@pytest.fixture
def breakers(clock: FakeClock) -> Breakers:
    return Breakers(clock)


@pytest.fixture
def recorder() -> events.Recorder:
    recorder = events.Recorder()
    events.add_hook(recorder)  # the autouse fixture restores the hooks
    return recorder


@pytest.fixture
def chain(
    cloud: LLMServer, local: LLMServer, breakers: Breakers, clock: FakeClock
) -> FallbackChain:
    return FallbackChain(
        table=seed_table(cloud, local),
        providers=make_providers(),
        breaker_for=breakers,
        clock=clock,
        environ=ENV,
    )


def with_timeouts(chain: FallbackChain, cloud: LLMServer, local: LLMServer, **t: float) -> Any:
    return FallbackChain(
        table=seed_table(cloud, local, **t),
        providers=chain.providers,
        breaker_for=chain.breaker_for,
        clock=chain.clock,
        environ=chain.environ,
    )


def counts(cloud: LLMServer, local: LLMServer) -> dict[str, int]:
    """Requests each seed model received."""
    return {
        name: (local if name == "local-llm" else cloud).requests_for(upstream)
        for name, upstream in UPSTREAM.items()
    }


def expected(model: str, prompt: str) -> str:
    return answer_text(UPSTREAM[model], prompt)


# -- the happy path ------------------------------------------------------------------------------


def test_primary_answers(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, recorder: events.Recorder
) -> None:
    result = chain.ask("what is 2+2?", DEFAULT_CHAIN)
    assert result == FallbackResult(
        text=expected("gpt-4o-mini", "what is 2+2?"),
        model="gpt-4o-mini",
        attempts=1,
        fallback_used=False,
        errors=(),
    )
    assert counts(cloud, local) == {"gpt-4o-mini": 1, "gpt-4o": 0, "claude-opus": 0, "local-llm": 0}
    assert recorder.of(events.FallbackAttempted) == [
        events.FallbackAttempted("gpt-4o-mini", outcome="success", position=0, error="")
    ]
    assert recorder.of(events.FallbackCompleted) == [
        events.FallbackCompleted("gpt-4o-mini", fallback_used=False, attempts=1, ok=True)
    ]


# -- transient failures fall through ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("behavior", "error_type", "status"),
    [
        (SERVER_ERROR, HttpStatusError, 500),
        (UNAVAILABLE, HttpStatusError, 503),
        (RATE_LIMITED, HttpStatusError, 429),
        (slow(10.0), requests.Timeout, None),
        (DROP, requests.ConnectionError, None),
    ],
    ids=["500", "503", "429", "timeout", "drop"],
)
def test_primary_failure_falls_through_to_the_next_model(
    chain: FallbackChain,
    cloud: LLMServer,
    local: LLMServer,
    recorder: events.Recorder,
    behavior: Behavior,
    error_type: type[Exception],
    status: int | None,
) -> None:
    chain = with_timeouts(chain, cloud, local, gpt_4o_mini=SHORT_TIMEOUT)
    cloud.set_behavior("gpt-4o-mini", behavior)
    started = time.monotonic()
    result = chain.ask("hello", DEFAULT_CHAIN)
    assert time.monotonic() - started < TIMEOUT
    assert (result.text, result.model) == (expected("gpt-4o", "hello"), "gpt-4o")
    assert (result.attempts, result.fallback_used) == (2, True)
    (failure,) = result.errors
    assert (failure.model, failure.skipped) == ("gpt-4o-mini", False)
    assert isinstance(failure.error, error_type)
    if status is not None:
        assert isinstance(failure.error, HttpStatusError)
        assert failure.error.status_code == status
    if status == 429:
        assert failure.error.retry_after == 7.0  # type: ignore[attr-defined]
    assert counts(cloud, local) == {"gpt-4o-mini": 1, "gpt-4o": 1, "claude-opus": 0, "local-llm": 0}
    attempted = recorder.of(events.FallbackAttempted)
    assert [(e.name, e.outcome, e.position) for e in attempted] == [
        ("gpt-4o-mini", "failure", 0),
        ("gpt-4o", "success", 1),
    ]
    assert attempted[0].error == failure.reason
    assert recorder.of(events.FallbackCompleted) == [
        events.FallbackCompleted("gpt-4o", fallback_used=True, attempts=2, ok=True)
    ]


def test_falls_through_to_anthropic_then_to_the_local_model(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer
) -> None:
    cloud.set_behavior("gpt-4o-mini", UNAVAILABLE)
    cloud.set_behavior("gpt-4o", SERVER_ERROR)
    result = chain.ask("hi", DEFAULT_CHAIN)
    assert (result.model, result.attempts, result.text) == (
        "claude-opus",
        3,
        expected("claude-opus", "hi"),
    )
    assert [f.model for f in result.errors] == ["gpt-4o-mini", "gpt-4o"]

    cloud.set_behavior("claude-opus-4-1", fail(529, retry_after="1"))
    result = chain.ask("hi again", DEFAULT_CHAIN)
    assert (result.model, result.attempts, result.fallback_used) == ("local-llm", 4, True)
    assert result.text == expected("local-llm", "hi again")
    assert counts(cloud, local) == {"gpt-4o-mini": 2, "gpt-4o": 2, "claude-opus": 2, "local-llm": 1}


def test_bad_key_on_one_model_falls_through(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, breakers: Breakers
) -> None:
    env = {**ENV, "ANTHROPIC_API_KEY": "sk-ant-revoked"}
    cloud.set_behavior("gpt-4o-mini", UNAVAILABLE)
    cloud.set_behavior("gpt-4o", UNAVAILABLE)
    bad_key = FallbackChain(
        table=chain.table, providers=chain.providers, breaker_for=breakers, environ=env
    )
    result = bad_key.ask("hi", DEFAULT_CHAIN)
    assert result.model == "local-llm"
    error = result.errors[2].error
    assert isinstance(error, HttpStatusError)
    assert error.status_code == 401


# -- a bad prompt is the caller's problem ----------------------------------------------------------


def test_bad_prompt_is_raised_at_once_without_fallback_or_tripping(
    chain: FallbackChain,
    cloud: LLMServer,
    local: LLMServer,
    breakers: Breakers,
    recorder: events.Recorder,
) -> None:
    cloud.set_behavior("gpt-4o-mini", BAD_REQUEST)
    for _ in range(FAIL_MAX * 3):
        with pytest.raises(HttpStatusError) as info:
            chain.ask("a prompt the API rejects", DEFAULT_CHAIN)
        assert info.value.status_code == 400
        assert is_prompt_error(info.value)
    assert counts(cloud, local) == {
        "gpt-4o-mini": FAIL_MAX * 3,
        "gpt-4o": 0,
        "claude-opus": 0,
        "local-llm": 0,
    }
    assert breakers.state("gpt-4o-mini") == "closed"
    cloud.set_behavior("gpt-4o-mini", OK)
    assert chain.ask("fine now", DEFAULT_CHAIN).model == "gpt-4o-mini"
    attempted = recorder.of(events.FallbackAttempted)
    assert attempted[0] == events.FallbackAttempted(
        "gpt-4o-mini",
        outcome="failure",
        position=0,
        error="HttpStatusError: gpt-4o-mini: openai answered HTTP 400: "
        "scripted 400 for gpt-4o-mini",
    )
    assert recorder.of(events.FallbackCompleted)[0] == events.FallbackCompleted(
        "", fallback_used=False, attempts=1, ok=False
    )


def test_context_length_error_from_the_fallback_is_raised(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer
) -> None:
    # The primary is down; the fallback is reached and rejects the prompt as too long.
    cloud.set_behavior("gpt-4o-mini", UNAVAILABLE)
    local.max_prompt_chars = 20
    with pytest.raises(HttpStatusError) as info:
        chain.ask_limited("x" * 21, "gpt-4o-mini", "local-llm")
    assert info.value.status_code == 400
    assert str(info.value) == (
        "local-llm: openai answered HTTP 400: prompt is 21 characters; this model's limit is 20"
    )
    assert cloud.requests_for("gpt-4o-mini") == 1
    assert local.total_requests == 1


def test_is_prompt_error_statuses() -> None:
    assert is_prompt_error(HttpStatusError(400))
    assert is_prompt_error(HttpStatusError(413))
    assert is_prompt_error(HttpStatusError(422))
    for status in (401, 403, 404, 408, 429, 500, 503, 529):
        assert not is_prompt_error(HttpStatusError(status))
    assert not is_prompt_error(requests.ConnectionError())


# -- breakers ------------------------------------------------------------------------------------


def test_down_primary_opens_its_breaker_and_is_then_skipped_without_a_request(
    chain: FallbackChain,
    cloud: LLMServer,
    local: LLMServer,
    breakers: Breakers,
    clock: FakeClock,
    recorder: events.Recorder,
) -> None:
    chain = with_timeouts(chain, cloud, local, gpt_4o_mini=SHORT_TIMEOUT)
    cloud.set_behavior("gpt-4o-mini", slow(10.0))
    for _ in range(FAIL_MAX):
        started = time.monotonic()
        assert chain.ask("q", DEFAULT_CHAIN).model == "gpt-4o"
        assert time.monotonic() - started >= SHORT_TIMEOUT  # each paid the timeout
    assert breakers.state("gpt-4o-mini") == "open"
    assert cloud.requests_for("gpt-4o-mini") == FAIL_MAX

    started = time.monotonic()
    result = chain.ask("q", DEFAULT_CHAIN)
    assert time.monotonic() - started < SHORT_TIMEOUT  # skipped at once
    assert cloud.requests_for("gpt-4o-mini") == FAIL_MAX  # no request reached the server
    assert (result.model, result.attempts, result.fallback_used) == ("gpt-4o", 2, True)
    (failure,) = result.errors
    assert failure.skipped
    assert isinstance(failure.error, CircuitOpenError)
    assert recorder.of(events.FallbackAttempted)[-2] == events.FallbackAttempted(
        "gpt-4o-mini", outcome="skipped", position=0, error=failure.reason
    )

    # After the reset timeout one probe goes through; the recovered primary answers again.
    cloud.set_behavior("gpt-4o-mini", OK)
    clock.advance(RESET_TIMEOUT + 0.1)
    result = chain.ask("q", DEFAULT_CHAIN)
    assert (result.model, result.fallback_used) == ("gpt-4o-mini", False)
    assert breakers.state("gpt-4o-mini") == "closed"
    assert cloud.requests_for("gpt-4o-mini") == FAIL_MAX + 1


def test_fallback_breakers_are_independent(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, breakers: Breakers
) -> None:
    cloud.set_behavior("gpt-4o-mini", UNAVAILABLE)
    for _ in range(FAIL_MAX + 2):
        chain.ask("q", DEFAULT_CHAIN)
    assert {m: breakers.state(m) for m in DEFAULT_CHAIN} == {
        "gpt-4o-mini": "open",
        "gpt-4o": "closed",
        "claude-opus": "closed",
        "local-llm": "closed",
    }
    assert set(breakers.made) == {f"llm:{m}" for m in DEFAULT_CHAIN}


# -- everything down -------------------------------------------------------------------------------


def test_all_models_down_raises_with_per_model_reasons(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, recorder: events.Recorder
) -> None:
    chain = with_timeouts(chain, cloud, local, local_llm=SHORT_TIMEOUT)
    cloud.set_behavior("gpt-4o-mini", RATE_LIMITED)
    cloud.set_behavior("gpt-4o", fail(503, retry_after="2"))
    cloud.set_behavior("claude-opus-4-1", DROP)
    local.set_behavior("llama-3-8b", slow(10.0))
    with pytest.raises(AllModelsFailed) as info:
        chain.ask("anyone?", DEFAULT_CHAIN)
    err = info.value
    assert isinstance(err, ResilienceError)
    assert [f.model for f in err.failures] == list(DEFAULT_CHAIN)
    assert not any(f.skipped for f in err.failures)
    kinds = [type(f.error) for f in err.failures]
    assert kinds[:2] == [HttpStatusError, HttpStatusError]
    assert issubclass(kinds[2], requests.ConnectionError)
    assert issubclass(kinds[3], requests.Timeout)
    assert err.retry_after == 2.0  # the shortest wait any model asked for
    message = str(err)
    assert message.startswith("all 4 models failed: gpt-4o-mini: HttpStatusError: gpt-4o-mini: ")
    assert "gpt-4o-mini: openai answered HTTP 429: scripted 429 for gpt-4o-mini" in message
    assert "; gpt-4o: HttpStatusError: gpt-4o: openai answered HTTP 503" in message
    assert "; claude-opus: ConnectionError: " in message
    assert "; local-llm: ReadTimeout: " in message
    assert recorder.of(events.FallbackCompleted) == [
        events.FallbackCompleted("", fallback_used=False, attempts=4, ok=False)
    ]
    assert [e.outcome for e in recorder.of(events.FallbackAttempted)] == ["failure"] * 4


def test_all_breakers_open_fails_fast_without_requests(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, breakers: Breakers
) -> None:
    for model in DEFAULT_CHAIN:
        (local if model == "local-llm" else cloud).set_behavior(UPSTREAM[model], UNAVAILABLE)
    for _ in range(FAIL_MAX):
        with pytest.raises(AllModelsFailed):
            chain.ask("q", DEFAULT_CHAIN)
    before = counts(cloud, local)
    with pytest.raises(AllModelsFailed) as info:
        chain.ask("q", DEFAULT_CHAIN)
    assert counts(cloud, local) == before
    assert all(f.skipped for f in info.value.failures)
    assert info.value.retry_after == pytest.approx(RESET_TIMEOUT)


# -- configuration faults --------------------------------------------------------------------------


def test_missing_api_key_skips_that_model_without_a_request_or_tripping(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, breakers: Breakers
) -> None:
    no_openai = FallbackChain(
        table=chain.table,
        providers=chain.providers,
        breaker_for=breakers,
        environ={"ANTHROPIC_API_KEY": ANTHROPIC_KEY},
    )
    for _ in range(FAIL_MAX + 1):
        result = no_openai.ask("hi", DEFAULT_CHAIN)
        assert (result.model, result.attempts) == ("claude-opus", 3)
    assert [type(f.error) for f in result.errors] == [MissingApiKey, MissingApiKey]
    assert result.errors[0].reason == (
        "MissingApiKey: model 'gpt-4o-mini': API key environment variable OPENAI_API_KEY is not set"
    )
    assert counts(cloud, local)["gpt-4o-mini"] == 0
    assert breakers.state("gpt-4o-mini") == "closed"


def test_chain_is_validated_before_any_call(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer
) -> None:
    with pytest.raises(ConfigError, match="unknown model 'gpt-5'; known models: "):
        chain.ask("hi", ["gpt-4o-mini", "gpt-5"])
    with pytest.raises(ConfigError, match="appears twice"):
        chain.ask_limited("hi", "gpt-4o", "gpt-4o")
    no_anthropic = FallbackChain(
        table=chain.table, providers={"openai": make_providers()["openai"]}, environ=ENV
    )
    with pytest.raises(ConfigError) as info:
        no_anthropic.ask("hi", DEFAULT_CHAIN)
    assert str(info.value) == "model 'claude-opus': no provider 'anthropic'; available: openai"
    assert cloud.total_requests == local.total_requests == 0


def test_breaker_misconfiguration_surfaces_before_any_call(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, unique: str
) -> None:
    def conflicting(name: str) -> Circuit:
        breaker(f"{unique}:{name}", fail_max=2)
        return breaker(f"{unique}:{name}", fail_max=3)

    broken = FallbackChain(
        table=chain.table, providers=chain.providers, breaker_for=conflicting, environ=ENV
    )
    with pytest.raises(ConfigError, match="already exists with another configuration"):
        broken.ask("hi", DEFAULT_CHAIN)
    assert cloud.total_requests == local.total_requests == 0


@pytest.mark.parametrize("attempts", [0, -1, True, 1.5])
def test_attempts_per_model_is_validated(attempts: Any) -> None:
    with pytest.raises(ConfigError) as info:
        FallbackChain(attempts_per_model=attempts)
    assert str(info.value) == f"attempts_per_model must be an integer >= 1, got {attempts!r}"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retry_base": 0}, "retry_base must be > 0 seconds, got 0"),
        ({"retry_cap": 0.1}, "retry_cap must be >= retry_base (0.2) seconds, got 0.1"),
    ],
)
def test_retry_settings_are_validated(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        FallbackChain(**options)  # type: ignore[arg-type]
    assert str(info.value) == message


# -- ask_with_fallback_limited --------------------------------------------------------------------


def test_limited_uses_the_fallback_only_when_the_primary_fails(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer
) -> None:
    result = ask_with_fallback_limited("hi", "gpt-4o", "local-llm", chain=chain)
    assert (result.model, result.attempts, result.fallback_used) == ("gpt-4o", 1, False)
    cloud.set_behavior("gpt-4o", SERVER_ERROR)
    result = ask_with_fallback_limited("hi", "gpt-4o", "local-llm", chain=chain)
    assert (result.model, result.attempts, result.fallback_used) == ("local-llm", 2, True)
    assert result.text == expected("local-llm", "hi")
    assert counts(cloud, local) == {"gpt-4o-mini": 0, "gpt-4o": 2, "claude-opus": 0, "local-llm": 1}


def test_limited_raises_when_both_fail_and_tries_nothing_else(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer
) -> None:
    cloud.set_behavior("gpt-4o-mini", UNAVAILABLE)
    cloud.set_behavior("claude-opus-4-1", RATE_LIMITED)
    with pytest.raises(AllModelsFailed) as info:
        chain.ask_limited("hi", "gpt-4o-mini", "claude-opus")
    assert [f.model for f in info.value.failures] == ["gpt-4o-mini", "claude-opus"]
    assert str(info.value).startswith("all 2 models failed: gpt-4o-mini: HttpStatusError: ")
    assert counts(cloud, local) == {"gpt-4o-mini": 1, "gpt-4o": 0, "claude-opus": 1, "local-llm": 0}


# -- per-model retries ----------------------------------------------------------------------------


def test_per_model_retry_recovers_on_the_same_model(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, clock: FakeClock
) -> None:
    retrying = FallbackChain(
        table=chain.table,
        providers=chain.providers,
        breaker_for=chain.breaker_for,
        clock=clock,
        environ=ENV,
        attempts_per_model=3,
        retry_cap=10.0,
    )
    cloud.queue("gpt-4o-mini", UNAVAILABLE, RATE_LIMITED)
    result = retrying.ask("hi", DEFAULT_CHAIN)
    assert (result.model, result.fallback_used, result.errors) == ("gpt-4o-mini", False, ())
    assert cloud.requests_for("gpt-4o-mini") == 3
    assert len(clock.sleeps) == 2
    assert clock.sleeps[1] >= 7.0  # the 429's Retry-After is honoured (on the fake clock)


def test_a_long_retry_after_falls_through_instead_of_waiting(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, clock: FakeClock
) -> None:
    retrying = FallbackChain(
        table=chain.table,
        providers=chain.providers,
        breaker_for=chain.breaker_for,
        clock=clock,
        environ=ENV,
        attempts_per_model=3,
        retry_cap=2.0,
    )
    cloud.set_behavior("gpt-4o-mini", RATE_LIMITED)  # asks for 7 s > retry_cap
    result = retrying.ask("hi", DEFAULT_CHAIN)
    assert (result.model, result.attempts) == ("gpt-4o", 2)
    assert cloud.requests_for("gpt-4o-mini") == 1
    assert clock.sleeps == []


def test_per_model_retry_gives_up_then_falls_through_as_one_breaker_failure(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, clock: FakeClock, breakers: Breakers
) -> None:
    retrying = FallbackChain(
        table=chain.table,
        providers=chain.providers,
        breaker_for=breakers,
        clock=clock,
        environ=ENV,
        attempts_per_model=2,
    )
    cloud.set_behavior("gpt-4o-mini", fail(529))
    for _ in range(FAIL_MAX - 1):
        assert retrying.ask("hi", DEFAULT_CHAIN).model == "gpt-4o"
    assert cloud.requests_for("gpt-4o-mini") == 2 * (FAIL_MAX - 1)
    assert breakers.state("gpt-4o-mini") == "closed"  # 3 sequences = 3 failures < FAIL_MAX
    cloud.reset()
    cloud.set_behavior("gpt-4o-mini", BAD_REQUEST)
    with pytest.raises(HttpStatusError):
        retrying.ask("hi", DEFAULT_CHAIN)
    assert cloud.requests_for("gpt-4o-mini") == 1  # a prompt error is never retried


# -- metrics and observability ------------------------------------------------------------------


def test_metrics_report_the_fallback_hit_rate(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer
) -> None:
    assert chain.ask("1", DEFAULT_CHAIN).model == "gpt-4o-mini"
    assert chain.ask("2", DEFAULT_CHAIN).model == "gpt-4o-mini"
    cloud.set_behavior("gpt-4o-mini", UNAVAILABLE)
    assert chain.ask("3", DEFAULT_CHAIN).model == "gpt-4o"
    for model in ("gpt-4o", "claude-opus-4-1"):
        cloud.set_behavior(model, UNAVAILABLE)
    local.set_behavior("llama-3-8b", UNAVAILABLE)
    with pytest.raises(AllModelsFailed):
        chain.ask("4", DEFAULT_CHAIN)
    fallback = events.METRICS.snapshot()["fallback"]
    assert fallback == {
        "chains": 4,
        "fallback_used": 1,
        "failed": 1,
        "fallback_hit_rate": 0.25,
        "answer_rate": 0.75,
    }
    assert events.METRICS.count("fallback.attempt", "gpt-4o-mini", "failure") == 2
    assert events.METRICS.count("fallback.attempt", "gpt-4o-mini", "success") == 2


def test_api_keys_never_reach_events_or_errors(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer, recorder: events.Recorder
) -> None:
    env = {"OPENAI_API_KEY": "sk-wrong-and-secret", "ANTHROPIC_API_KEY": "sk-ant-wrong-secret"}
    leaky = FallbackChain(
        table=chain.table, providers=chain.providers, breaker_for=chain.breaker_for, environ=env
    )
    local.set_behavior("llama-3-8b", UNAVAILABLE)
    with pytest.raises(AllModelsFailed) as info:
        leaky.ask("hi", DEFAULT_CHAIN)
    assert [
        f.error.status_code  # type: ignore[attr-defined]
        for f in info.value.failures
    ] == [401, 401, 401, 503]
    text = str(info.value) + repr([e.fields() for e in recorder.events])
    for secret in (*env.values(), OPENAI_KEY, ANTHROPIC_KEY):
        assert secret not in text


def test_concurrent_chains_all_get_answers(
    chain: FallbackChain, cloud: LLMServer, local: LLMServer
) -> None:
    cloud.set_behavior("gpt-4o-mini", UNAVAILABLE)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: chain.ask(f"q{i}", DEFAULT_CHAIN), range(32)))
    assert {r.text for r in results} == {expected("gpt-4o", f"q{i}") for i in range(32)}
    # The breaker opened after FAIL_MAX failures; racing chains may each have sent one more.
    assert FAIL_MAX <= cloud.requests_for("gpt-4o-mini") < 32


# -- the process defaults ------------------------------------------------------------------------


def test_module_functions_use_the_env_table_keys_and_registry(
    cloud: LLMServer, local: LLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "models.yaml"
    lines = ["models:"]
    for name, spec in seed_table(cloud, local).specs.items():
        lines += [f"  {name}:", f"    base_url: {spec.base_url}", f"    model: {spec.model}"]
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setenv(MODEL_TABLE_ENV, str(path))
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    result = ask_with_fallback("default path")
    assert (result.model, result.text) == ("gpt-4o-mini", expected("gpt-4o-mini", "default path"))
    result = ask_with_fallback_limited("limited", "claude-opus", "local-llm")
    assert (result.model, result.text) == ("claude-opus", expected("claude-opus", "limited"))
    assert breaker("llm:claude-opus").state == "closed"


def test_registry_breaker_is_the_named_registry_entry(unique: str) -> None:
    assert registry_breaker(f"llm:{unique}") is breaker(f"llm:{unique}")
    assert breaker_name("gpt-4o") == "llm:gpt-4o"


def test_model_failure_reason() -> None:
    failure = ModelFailure("m", HttpStatusError(503, "m: down"))
    assert failure.reason == "HttpStatusError: m: down"
    assert not failure.skipped
