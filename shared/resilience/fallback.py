"""The LLM fallback chain: ask models in order until one answers.

Each model sits behind its own circuit breaker (``llm:<model>`` in the breaker registry), so a
model that is down is skipped at once instead of costing every request a timeout. Failures are
routed by class: a prompt the API rejects (400/413/422) is the caller's fault and is raised at once
without trying other models or tripping a breaker; anything else (429, 5xx, timeouts, dropped
connections, a bad key, an unusable answer) falls through to the next model. A model whose API-key
variable is unset fails as a configuration error without a request. Every model tried emits
:class:`~shared.resilience.events.FallbackAttempted` and every chain one
:class:`~shared.resilience.events.FallbackCompleted`, from which ``METRICS`` derives the fallback
hit rate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from shared.resilience import events
from shared.resilience.clock import SYSTEM_CLOCK, Clock
from shared.resilience.compose import Breaker
from shared.resilience.errors import CircuitOpenError, ConfigError, ResilienceError
from shared.resilience.llm import DEFAULT_CHAIN, ModelSpec, ModelTable, api_key_for, model_table
from shared.resilience.llm_providers import Provider, default_providers
from shared.resilience.retries import RetryPolicy
from shared.resilience.transient import is_transient, retry_after_of, status_code_of

__all__ = [
    "PROMPT_ERROR_STATUSES",
    "AllModelsFailed",
    "BreakerFactory",
    "FallbackChain",
    "FallbackResult",
    "ModelFailure",
    "ask_with_fallback",
    "ask_with_fallback_limited",
    "breaker_name",
    "is_prompt_error",
    "registry_breaker",
]

#: Statuses that mean "this prompt is wrong", whichever model gets it.
PROMPT_ERROR_STATUSES: Final = frozenset({400, 413, 422})

Outcome = Literal["success", "failure", "skipped"]

BreakerFactory = Callable[[str], Breaker]
"""Returns the breaker guarding one model, given its breaker name (``llm:<model>``)."""


def is_prompt_error(exc: BaseException) -> bool:
    """True when the API rejected the request itself (HTTP 400, 413 or 422): do not fall through."""
    return status_code_of(exc) in PROMPT_ERROR_STATUSES


def breaker_name(model: str) -> str:
    """The registry name of the breaker guarding ``model``."""
    return f"llm:{model}"


def registry_breaker(name: str) -> Breaker:
    """The named breaker from the process-wide registry, with the registry's default settings."""
    from shared.resilience.circuit import breaker

    return breaker(name)


def _worth_retrying(exc: BaseException) -> bool:
    # Transient errors plus any 5xx: Anthropic's 529 "overloaded" is not a standard status.
    status = status_code_of(exc)
    return is_transient(exc) or (status is not None and status >= 500)


@dataclass(frozen=True, slots=True)
class ModelFailure:
    """Why one model of a chain gave no answer; ``skipped`` means its breaker was open."""

    model: str
    error: BaseException
    skipped: bool = False

    @property
    def reason(self) -> str:
        """One line: the error's class and message (never an API key)."""
        return f"{type(self.error).__name__}: {self.error}"


@dataclass(frozen=True, slots=True)
class FallbackResult:
    """A chain's answer.

    ``attempts`` counts the models consulted, skipped ones included (1 = the primary answered);
    ``errors`` holds the failures of the models before the one that answered.
    """

    text: str
    model: str
    attempts: int
    fallback_used: bool
    errors: tuple[ModelFailure, ...] = ()


class AllModelsFailed(ResilienceError):
    """No model of the chain answered; ``failures`` says why for each, in chain order.

    ``retry_after`` (seconds) is the shortest wait any model asked for (a ``Retry-After`` or an
    open breaker's remaining time), or None if none said.
    """

    def __init__(self, failures: Sequence[ModelFailure]) -> None:
        self.failures = tuple(failures)
        waits = [w for w in (retry_after_of(f.error) for f in self.failures) if w is not None]
        self.retry_after = min(waits) if waits else None
        reasons = "; ".join(f"{f.model}: {f.reason}" for f in self.failures)
        super().__init__(f"all {len(self.failures)} models failed: {reasons}")


@dataclass(frozen=True, slots=True)
class FallbackChain:
    """Everything a chain needs, each part replaceable (tests inject all of them).

    ``table`` defaults to :func:`~shared.resilience.llm.model_table` read at call time;
    ``providers`` maps the table's provider names to providers (default: the process-wide
    ones); ``breaker_for`` returns the breaker for a breaker name (default: the registry);
    ``environ`` is where API keys are read (default: ``os.environ`` at call time).
    ``attempts_per_model`` > 1 retries a model with backoff (``retry_base``/``retry_cap`` seconds)
    before falling through, but not when it asks (``Retry-After``) for more than ``retry_cap``;
    the default 1 relies on falling through as the retry.
    """

    table: ModelTable | None = None
    providers: Mapping[str, Provider] | None = None
    breaker_for: BreakerFactory = registry_breaker
    attempts_per_model: int = 1
    retry_base: float = 0.2
    retry_cap: float = 2.0
    clock: Clock = SYSTEM_CLOCK
    environ: Mapping[str, str] | None = None
    prompt_error: Callable[[BaseException], bool] = is_prompt_error

    def __post_init__(self) -> None:
        if isinstance(self.attempts_per_model, bool) or not (
            isinstance(self.attempts_per_model, int) and self.attempts_per_model >= 1
        ):
            raise ConfigError(
                f"attempts_per_model must be an integer >= 1, got {self.attempts_per_model!r}"
            )
        # Checked here, not by RetryPolicy at call time, where it would pass for a model failure.
        if not self.retry_base > 0:
            raise ConfigError(f"retry_base must be > 0 seconds, got {self.retry_base!r}")
        if not self.retry_cap >= self.retry_base:
            raise ConfigError(
                f"retry_cap must be >= retry_base ({self.retry_base}) seconds, "
                f"got {self.retry_cap!r}"
            )

    def ask(self, prompt: str, models: Sequence[str] = DEFAULT_CHAIN) -> FallbackResult:
        """Ask ``models`` in order; the first answer, or :class:`AllModelsFailed`.

        The chain is validated before any model is called (known, distinct models with a
        provider). A prompt error is re-raised unchanged from the model that reported it.
        """
        specs, providers, circuits = self._resolve(models)
        failures: list[ModelFailure] = []
        for position, spec in enumerate(specs):
            try:
                text = self._ask_one(spec, providers[spec.provider], circuits[position], prompt)
            except CircuitOpenError as exc:
                failures.append(ModelFailure(spec.name, exc, skipped=True))
                _attempted(spec.name, "skipped", position, failures[-1].reason)
                continue
            except Exception as exc:  # any failure of one model moves on to the next one
                failure = ModelFailure(spec.name, exc)
                _attempted(spec.name, "failure", position, failure.reason)
                if self.prompt_error(exc):
                    _completed("", position + 1, ok=False)
                    raise
                failures.append(failure)
                continue
            _attempted(spec.name, "success", position, "")
            _completed(spec.name, position + 1, ok=True, fallback_used=position > 0)
            return FallbackResult(text, spec.name, position + 1, position > 0, tuple(failures))
        _completed("", len(specs), ok=False)
        raise AllModelsFailed(failures)

    def ask_limited(self, prompt: str, primary: str, fallback: str) -> FallbackResult:
        """Ask ``primary``, then ``fallback`` only if the primary gave no answer."""
        return self.ask(prompt, (primary, fallback))

    def _resolve(
        self, models: Sequence[str]
    ) -> tuple[tuple[ModelSpec, ...], Mapping[str, Provider], tuple[Breaker, ...]]:
        table = self.table if self.table is not None else model_table(self.environ)
        specs = table.chain(models)
        providers = self.providers if self.providers is not None else default_providers()
        for spec in specs:
            if spec.provider not in providers:
                available = ", ".join(sorted(providers)) or "(none)"
                raise ConfigError(
                    f"model {spec.name!r}: no provider {spec.provider!r}; available: {available}"
                )
        # Looked up front so a breaker misconfiguration surfaces here, not as a model failure.
        circuits = tuple(self.breaker_for(breaker_name(spec.name)) for spec in specs)
        return specs, providers, circuits

    def _ask_one(self, spec: ModelSpec, provider: Provider, circuit: Breaker, prompt: str) -> str:
        # Read before the breaker: a missing key is a configuration fault, not an outage.
        api_key = api_key_for(spec, self.environ)

        def attempt() -> str:
            return provider.complete(spec, prompt, api_key)

        def retry_on(exc: BaseException) -> bool:
            # A model asking to wait longer than retry_cap is left for the next model instead.
            wait = retry_after_of(exc)
            return _worth_retrying(exc) and (wait is None or wait <= self.retry_cap)

        # A policy of its own, not retry()'s memo: retry_on is a new closure on every call.
        policy = RetryPolicy(
            self.attempts_per_model,
            base=self.retry_base,
            cap=self.retry_cap,
            retry_on=retry_on,
            name=breaker_name(spec.name),
            clock=self.clock,
        )
        # Breaker outside the retries (as compose.with_breaker_and_retry): one exhausted
        # sequence is one failure, and an open breaker refuses before any request.
        return circuit.call(lambda: policy.call(attempt))


def _attempted(model: str, outcome: Outcome, position: int, error: str) -> None:
    events.emit(events.FallbackAttempted(model, outcome=outcome, position=position, error=error))


def _completed(model: str, attempts: int, *, ok: bool, fallback_used: bool = False) -> None:
    # A failed chain reports fallback_used=False: METRICS counts it as "failed", not as a hit.
    events.emit(
        events.FallbackCompleted(model, fallback_used=fallback_used, attempts=attempts, ok=ok)
    )


def ask_with_fallback(
    prompt: str,
    models: Sequence[str] = DEFAULT_CHAIN,
    *,
    chain: FallbackChain | None = None,
) -> FallbackResult:
    """Ask ``models`` in order (default: the seed chain) until one answers.

    Raises :class:`AllModelsFailed` when none does, and a prompt error (HTTP 400/413/422) at once.
    ``chain`` carries the table, providers, breakers and retry settings (default: the process
    defaults).
    """
    return (chain or _DEFAULT).ask(prompt, models)


def ask_with_fallback_limited(
    prompt: str, primary: str, fallback: str, *, chain: FallbackChain | None = None
) -> FallbackResult:
    """Ask ``primary``, then ``fallback`` if the primary gave no answer."""
    return (chain or _DEFAULT).ask_limited(prompt, primary, fallback)


# Holds no clients: the table is read and the providers are built on the first ask.
_DEFAULT: Final = FallbackChain()
