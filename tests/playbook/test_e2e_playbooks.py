"""The other shipped playbooks, shortened by --var, against chaos_delay/chaos_proxy processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shared.playbook.cli import main
from tests.chaos.servers import start_function

pytestmark = pytest.mark.slow

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


@dataclass
class Functions:
    delay_url: str
    proxy_url: str


@pytest.fixture(scope="module")
def functions() -> Iterator[Functions]:
    env = {"CHAOS_ENABLED": "true", "CHAOS_AUTH": "none"}
    delay = start_function("chaos_delay", env)
    try:
        proxy = start_function("chaos_proxy", env)
        try:
            yield Functions(f"http://{delay.host}/chaos_delay", f"http://{proxy.host}/chaos_proxy")
        finally:
            proxy.stop()
    finally:
        delay.stop()


def _run(name: str, tmp_path: Path, *variables: str) -> tuple[int, dict[str, Any]]:
    journal = tmp_path / f"{name}.json"
    argv = ["run", str(PLAYBOOKS / f"{name}.yaml"), "--journal", str(journal)]
    for variable in variables:
        argv += ["--var", variable]
    return main(argv), json.loads(journal.read_text())


def _output(journal: dict[str, Any], step: str) -> Any:
    return next(s["output"] for s in journal["steps"] if s["name"] == step)


def test_neo4j_slow_is_absorbed_by_the_cache(functions: Functions, tmp_path: Path) -> None:
    code, journal = _run(
        "neo4j-slow", tmp_path, f"chaos_delay_url={functions.delay_url}", "delay_ms=200",
        "reads=20",
    )  # fmt: skip
    assert code == 0, journal["criteria"]
    output = _output(journal, "cached-reads-of-slow-dependency")
    assert (output["cache"]["hits"], output["cache"]["misses"]) == (18, 2)
    assert output["latency_ms"]["max"] >= 200  # the misses really waited for chaos_delay
    assert output["latency_ms"]["p95"] < 800
    assert output["ux_fallbacks"] == 0


def test_neo4j_slow_deviates_when_reads_time_out(functions: Functions, tmp_path: Path) -> None:
    code, journal = _run(
        "neo4j-slow", tmp_path, f"chaos_delay_url={functions.delay_url}", "delay_ms=300",
        "reads=4", "timeout_s=0.1",
    )  # fmt: skip
    assert code == 1
    assert journal["status"] == "deviated"
    output = _output(journal, "cached-reads-of-slow-dependency")
    assert output["ux_fallbacks"] == 4  # nothing cached: every read showed the fallback message


def test_ratelimit_surge_serves_premium_first(functions: Functions, tmp_path: Path) -> None:
    code, journal = _run(
        "ratelimit-surge", tmp_path, f"chaos_delay_url={functions.delay_url}",
        "capacity_rpm=1200", "duration_s=3", "http_rate_rps=10",
    )  # fmt: skip
    assert code == 0, journal["criteria"]
    admission = _output(journal, "admission-under-surge")
    assert admission["offered_rpm"] == 1800
    assert admission["premium"]["within_target_rate"] == 1.0
    assert admission["free"]["p95_wait_ms"] > admission["premium"]["p95_wait_ms"]
    surge = _output(journal, "http-surge")
    assert surge["sent"] == 30
    assert surge["status_counts"] == {"200": 30}


def test_cold_start_after_prewarm(functions: Functions, tmp_path: Path) -> None:
    code, journal = _run(
        "cold-start", tmp_path, f"chaos_delay_url={functions.delay_url}",
        f"chaos_proxy_url={functions.proxy_url}", "calls=5",
    )  # fmt: skip
    assert code == 0, journal["criteria"]
    output = _output(journal, "calls-after-prewarm")
    assert output["calls"] == 10
    assert output["failures"] == 0
    assert len(output["urls"]) == 2
