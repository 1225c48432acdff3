"""cold_start against a small service process: found by its port, copied, timed, stopped."""

from __future__ import annotations

import sys

import psutil
import pytest

from shared.chaos.ctk.errors import InvalidArgument, ServiceFailed
from shared.chaos.ctk.service import cold_start, find_service, with_port
from tests import services
from tests.ctk.stack import REPO, clean_env

pytestmark = pytest.mark.slow


def _fake(cache: str) -> services.Service:
    port = services.free_port()
    argv = [sys.executable, "-m", "tests.ctk.servers", "--port", str(port), "--cache", cache]
    return services.start_process("fake_graph_ask", argv, port, env=clean_env(), cwd=str(REPO))


def test_with_port_replaces_or_adds_the_port() -> None:
    assert with_port(["ff", "--port", "8085", "--host", "h"], 9) == [
        "ff",
        "--host",
        "h",
        "--port",
        "9",
    ]
    assert with_port(["ff", "--port=8085"], 9) == ["ff", "--port", "9"]
    assert with_port(["ff"], 9) == ["ff", "--port", "9"]


def test_prewarm_fills_the_cache_of_a_fresh_instance() -> None:
    with services.running(_fake("on")) as svc:
        url = f"http://127.0.0.1:{svc.port}/graph_ask"
        found = find_service(svc.port)
        assert found.pid == svc.pid
        assert "tests.ctk.servers" in found.argv
        warm = cold_start(url, prewarm=True, calls=4, interval_s=0.0, settle_s=0.0)
        cold = cold_start(url, prewarm=False, calls=4, interval_s=0.0, settle_s=0.0)
        assert svc.alive()  # the running service was copied, never touched
        # Both copies are gone: nothing else listens for this service's command line.
        copies = [
            p
            for p in psutil.process_iter(["cmdline"])
            if "tests.ctk.servers" in (p.info["cmdline"] or [])
        ]
        assert [p.pid for p in copies] == [svc.pid]
    assert warm["failures"] == cold["failures"] == 0
    assert warm["first_cache"] == "hit"
    assert warm["cache_hit_ratio"] == 1.0
    assert cold["first_cache"] == "miss"
    # A miss costs the fake 150 ms: the prewarm saves it on the first request.
    assert cold["first_ms"] - warm["first_ms"] > 100.0
    assert warm["prewarm_ms"] > 100.0
    assert cold["prewarm_ms"] == 0.0
    assert warm["start_s"] > 0


def test_a_service_without_cache_reports_no_hit_ratio() -> None:
    with services.running(_fake("off")) as svc:
        result = cold_start(
            f"http://127.0.0.1:{svc.port}/graph_ask", calls=2, interval_s=0.0, settle_s=0.0
        )
    assert result["cache_hit_ratio"] is None
    assert result["first_cache"] == "off"


def test_nothing_listening_and_bad_arguments() -> None:
    port = services.free_port()
    with pytest.raises(ServiceFailed, match=f"no process of this user listens on port {port}"):
        cold_start(f"http://127.0.0.1:{port}/graph_ask")
    with pytest.raises(InvalidArgument, match="calls must be an integer in"):
        cold_start(f"http://127.0.0.1:{port}/graph_ask", calls=1)
    with pytest.raises(InvalidArgument, match="url must be"):
        cold_start("http://example.com:80/graph_ask")
