"""Each deploy bundle is self-contained: a fresh venv with only the bundle's requirements.txt
serves it with functions-framework from inside the bundle directory (no PYTHONPATH to the repo).

Installing the requirements takes a while (pip from the local wheel cache/registry): one venv
per distinct requirements file, built once per session, two at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from scripts import bundle, local_upstream, procs
from scripts.catalog import FUNCTIONS, REPO, FunctionSpec, function
from tests.services import Service

pytestmark = pytest.mark.slow

PIP_TIMEOUT_S = 600
Serve = Callable[[FunctionSpec, Path, Path, dict[str, str]], int]


def make_venv(path: Path, requirements: Path) -> Path:
    """A fresh venv holding exactly ``requirements`` (and what they depend on)."""
    # No pip inside the venv (this pip installs into it) and no bytecode compilation up front:
    # a third of the time, and the venv still holds nothing but the requirements.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120
    )
    pip = [sys.executable, "-m", "pip", "--python", str(path / "bin/python")]
    done = subprocess.run(
        [*pip, "install", "-q", "--no-compile", "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"pip install -r {requirements} failed:\n{done.stderr[-3000:]}")
    return path


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """``{function: (bundle dir, venv dir)}``: every bundle built outside the repo, each with a
    venv holding exactly its requirements."""
    root = tmp_path_factory.mktemp("bundles")
    built = {s.name: bundle.build(s, dest=root / s.name) for s in FUNCTIONS}
    by_hash: dict[str, Path] = {}
    for b in built.values():
        digest = hashlib.sha256((b.path / "requirements.txt").read_bytes()).hexdigest()[:12]
        by_hash.setdefault(digest, b.path / "requirements.txt")
    venvs = root / "venvs"
    with ThreadPoolExecutor(max_workers=2) as pool:
        made = dict(
            zip(
                by_hash,
                pool.map(lambda item: make_venv(venvs / item[0], item[1]), by_hash.items()),
                strict=True,
            )
        )
    out = {}
    for name, b in built.items():
        digest = hashlib.sha256((b.path / "requirements.txt").read_bytes()).hexdigest()[:12]
        out[name] = (b.path, made[digest])
    return out


def bare_env(**extra: str) -> dict[str, str]:
    """A minimal environment: nothing that could point Python at the repository."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    env.update({"WORKERS": "1", "THREADS": "8", "GOOGLE_CLOUD_PROJECT": "demo-bundle-test"})
    env.update(extra)
    return env


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start a bundle with its venv's functions-framework from inside the bundle directory."""
    group = procs.ProcessGroup(tmp_path / "logs")

    def start(spec: FunctionSpec, bundle_dir: Path, venv: Path, env: dict[str, str]) -> int:
        port = procs.free_port()
        argv = [
            str(venv / "bin/functions-framework"),
            "--target",
            spec.entry_point,
            "--source",
            "main.py",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        child = group.start(spec.name, argv, port=port, env=env, cwd=bundle_dir, timeout=60)
        child.wait_for_http("/__ready__", timeout=30)
        return port

    yield start
    group.stop_all()


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_bundle_imports_nothing_from_the_repository(bundles: dict[str, tuple[Path, Path]]) -> None:
    for name, (path, venv) in bundles.items():
        check = (
            "import sys, main; "
            f"assert not any(p.startswith({str(REPO)!r}) for p in sys.path), sys.path; "
            "print(main.__file__)"
        )
        done = subprocess.run(
            [str(venv / "bin/python"), "-c", check],
            cwd=path,
            env=bare_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"{name}: {done.stderr}"
        assert done.stdout.strip() == str(path / "main.py")
        assert shutil.which("functions-framework", path=str(venv / "bin"))


def test_chaos_delay_bundle_serves_http(
    bundles: dict[str, tuple[Path, Path]], serve: Serve
) -> None:
    path, venv = bundles["chaos_delay"]
    env = bare_env(CHAOS_ENABLED="true", CHAOS_AUTH="none")
    port = serve(function("chaos_delay"), path, venv, env)

    status, body = call("GET", f"http://127.0.0.1:{port}/?p=0&d=20&seed=7")
    assert status == 200
    assert body["ok"] is True
    assert 20 <= float(str(body["delay_ms"])) <= 40 + 5
    status, body = call("GET", f"http://127.0.0.1:{port}/?p=2")
    assert status == 400
    assert "p" in json.dumps(body)


def test_chaos_proxy_bundle_forwards_to_an_upstream(
    bundles: dict[str, tuple[Path, Path]], serve: Serve, firestore_service: Service
) -> None:
    upstream = local_upstream.serve(procs.free_port())
    try:
        path, venv = bundles["chaos_proxy"]
        env = bare_env(
            CHAOS_ENABLED="true",
            CHAOS_AUTH="none",
            CHAOS_UPSTREAMS=f"demo=http://127.0.0.1:{upstream.server_port}",
            FIRESTORE_EMULATOR_HOST=firestore_service.host,
        )
        port = serve(function("chaos_proxy"), path, venv, env)

        status, body = call("GET", f"http://127.0.0.1:{port}/chaos_proxy/demo/items/1?x=2")
        assert status == 200
        assert body["upstream"] == "local"
        assert body["path"] == "/items/1"
        assert body["query"] == "x=2"
        status, body = call("GET", f"http://127.0.0.1:{port}/?mode=error")
        assert status == 502
    finally:
        upstream.shutdown()
        upstream.server_close()


def test_slo_monitor_bundle_runs_with_its_shipped_code(
    bundles: dict[str, tuple[Path, Path]],
    serve: Serve,
    firestore_service: Service,
    tmp_path: Path,
) -> None:
    path, venv = bundles["slo_monitor"]
    assert (path / "config/slos.yaml").is_file()
    # The local SLO file (SQLite source) instead of Cloud Monitoring: there is no network here.
    local_config = tmp_path / "slos.local.yaml"
    shutil.copy(REPO / "config/slos.local.yaml", local_config)
    env = bare_env(
        SLO_CONFIG=str(local_config),
        LOCAL_METRICS_DB=str(tmp_path / "metrics.db"),
        FIRESTORE_EMULATOR_HOST=firestore_service.host,
    )
    port = serve(function("slo_monitor"), path, venv, env)

    status, body = call("POST", f"http://127.0.0.1:{port}/", b"")
    assert status == 200, body
    status, body = call("PUT", f"http://127.0.0.1:{port}/", b"")
    assert status == 405
    assert body["error"] == "method_not_allowed"
