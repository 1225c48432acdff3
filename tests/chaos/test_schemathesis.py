"""Schemathesis over ``openapi/chaos.yaml`` against both real functions, in-process (WSGI).

Every operation of the document, in both generation modes (positive: valid data must be
answered as documented; negative: invalid data must be refused with a documented 4xx), through
the examples, coverage and fuzzing phases, with every check schemathesis has. Sleeps run on a fake
clock (a fuzzed ``d=10000`` or a drop costs nothing) and experiments live in memory, so the run
is bounded by examples, not by time.

Injected failures are the functions' purpose: a response marked ``X-Chaos-Injected: true`` is
still checked against the document (status, headers, body schema), and only the "not a server
error" verdict is waived for it, by that header. An unmarked 5xx fails the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import functions_framework
import pytest
import schemathesis
from schemathesis.checks import CHECKS, load_all_checks, not_a_server_error
from schemathesis.generation import GenerationMode

from shared.chaos.experiments import MemoryExperimentStore
from shared.chaos.runtime import use_runtime
from shared.obs import INJECTED_HEADER
from shared.resilience.clock import FakeClock
from tests.chaos.servers import REPO, EchoUpstream

MAX_EXAMPLES = 40
"""Per operation and phase: about 30 s for the whole document (14 operations) on 2 cores."""

schema = schemathesis.openapi.from_path(str(REPO / "openapi" / "chaos.yaml"))
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=True,  # the same cases every run: CI failures reproduce locally
)
schema.config.phases.update(phases=["examples", "coverage", "fuzzing"])

load_all_checks()
ALL_CHECKS = CHECKS.get_all()


def _dispatcher() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """One WSGI app for the document's two servers: ``/chaos_delay...`` and everything else."""
    delay = functions_framework.create_app(
        target="chaos_delay", source="functions/chaos_delay/main.py"
    )
    proxy = functions_framework.create_app(
        target="chaos_proxy", source="functions/chaos_proxy/main.py"
    )

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = delay if environ.get("PATH_INFO", "").startswith("/chaos_delay") else proxy
        return target(environ, start_response)  # type: ignore[no-any-return]

    return app


@pytest.fixture(autouse=True)
def chaos_stack(chaos_env: pytest.MonkeyPatch, echo_upstream: EchoUpstream) -> Iterator[None]:
    """Chaos on, no auth, one upstream (the echo server), instant sleeps, experiments in memory."""
    chaos_env.setenv("CHAOS_UPSTREAMS", f"echo={echo_upstream.url}")
    chaos_env.setenv("CHAOS_DROP_HOLD_S", "0.01")
    chaos_env.setenv("CHAOS_UPSTREAM_TIMEOUT_S", "5")
    with use_runtime(clock=FakeClock(1_800_000_000.0), store=MemoryExperimentStore()):
        yield


APP = _dispatcher()


@schema.parametrize()
def test_the_functions_answer_as_documented(case: schemathesis.Case) -> None:
    response = case.call(app=APP)
    injected = any(
        name.lower() == INJECTED_HEADER.lower() and "true" in values
        for name, values in response.headers.items()
    )
    case.validate_response(
        response,
        checks=ALL_CHECKS,
        excluded_checks=[not_a_server_error] if injected and response.status_code >= 500 else [],
        transport_kwargs={"app": APP},
    )
