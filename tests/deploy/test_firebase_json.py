"""firebase.json: Hosting rewrites to the deployed functions, emulator ports, the public dir.

The checks against firebase-tools read its installed schema and sources (``make setup`` installs
it): a missing file fails the test, it is never a reason to skip.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from scripts import catalog, deploy
from scripts.catalog import REPO

FIREBASE_TOOLS = REPO / "node_modules/firebase-tools"


def firebase_tools_file(rel: str) -> str:
    path = FIREBASE_TOOLS / rel
    assert path.is_file(), f"{path} is missing: run `make setup` (scripts/node-deps.sh)"
    return path.read_text()


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return dict(json.loads((REPO / "firebase.json").read_text()))


def function_rewrites(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in config["hosting"]["rewrites"] if "function" in r]


def entry_points(main: Path) -> set[str]:
    """Top-level function names defined in an entry module."""
    tree = ast.parse(main.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_rewrites_serve_each_chaos_function_at_its_own_path(config: dict[str, Any]) -> None:
    """Same paths as the functions' own URLs: a client switches origin, nothing else."""
    rewrites = {r["source"]: r["function"] for r in function_rewrites(config)}

    assert set(rewrites) == {"/chaos_delay", "/chaos_proxy", "/chaos_proxy/**"}
    for source, target in rewrites.items():
        assert isinstance(target, dict), "gen2 functions need the object form of `function`"
        assert source.split("/")[1] == target["functionId"]
        assert target["region"] == deploy.DEFAULT_REGION


def test_chaos_proxy_routes_the_paths_hosting_forwards() -> None:
    """Hosting keeps the request path: the proxy must read ``/chaos_proxy/...`` as its own."""
    from shared.chaos.proxy_handler import route_of

    assert route_of("/chaos_proxy").kind == "mode"
    forward = route_of("/chaos_proxy/demo/v1/items")
    assert (forward.kind, forward.upstream, forward.rest) == ("forward", "demo", "/v1/items")
    assert route_of("/chaos_proxy/_experiments").kind == "experiments"


def test_rewrites_name_deployed_public_functions_with_existing_entry_points(
    config: dict[str, Any],
) -> None:
    for rewrite in function_rewrites(config):
        name = rewrite["function"]["functionId"]
        spec = catalog.function(name)
        # Hosting calls the function without IAM credentials: only public functions work.
        assert spec.public, f"{name} is deployed with --no-allow-unauthenticated"
        main = REPO / "functions" / name / "main.py"
        assert main.is_file(), f"{main} missing"
        assert spec.entry_point in entry_points(main)


def test_slo_monitor_is_not_exposed_through_hosting(config: dict[str, Any]) -> None:
    ids = [r["function"]["functionId"] for r in function_rewrites(config)]
    assert catalog.SLO_MONITOR.name not in ids


def test_emulator_ports_and_disabled_ui(config: dict[str, Any]) -> None:
    emulators = config["emulators"]
    ports = {
        name: emulators[name]["port"] for name in ("auth", "firestore", "hosting", "functions")
    }
    assert ports == {"auth": 9099, "firestore": 8086, "hosting": 5000, "functions": 5001}
    assert emulators["ui"] == {"enabled": False}
    assert all(emulators[name]["host"] == "127.0.0.1" for name in ports)


def test_public_dir_holds_the_admin_page(config: dict[str, Any]) -> None:
    public = REPO / config["hosting"]["public"]
    page = (public / "index.html").read_text()
    assert "/chaos_${kind}" in page
    spa = [r for r in config["hosting"]["rewrites"] if "destination" in r]
    assert all((public / r["destination"].lstrip("/")).is_file() for r in spa)


def test_rewrites_use_only_keys_firebase_tools_accepts(config: dict[str, Any]) -> None:
    schema = json.loads(firebase_tools_file("schema/firebase-config.json"))
    allowed = [
        (set(alt["properties"]), set(alt.get("required", [])), alt["properties"])
        for alt in schema["definitions"]["HostingRewrites"]["anyOf"]
    ]
    for rewrite in config["hosting"]["rewrites"]:
        matches = [
            props
            for keys, required, props in allowed
            if set(rewrite) <= keys
            and required <= set(rewrite)
            and all(
                not isinstance(v, dict) or set(v) <= set(props[k].get("properties", {}))
                for k, v in rewrite.items()
            )
        ]
        assert matches, f"firebase-tools rejects rewrite {rewrite}"


def test_blue_green_functions_are_not_pinned_by_hosting(config: dict[str, Any]) -> None:
    """Hosting must follow the service's traffic split, so `make deploy STEP=shift` moves its
    users too. ``pinTag`` would route a Hosting release past the split to the revision that was
    latest at ``firebase deploy`` (after a no-traffic deploy: the candidate, reusing its tag),
    and firebase-tools refuses it outright for a function with min-instances."""
    for rewrite in function_rewrites(config):
        spec = catalog.function(rewrite["function"]["functionId"])
        pinned = rewrite["function"].get("pinTag", False)
        assert not (pinned and spec.blue_green), f"{spec.name}: pinTag bypasses blue/green"
        assert not (pinned and spec.min_instances), f"{spec.name}: pinTag with min-instances"
    # What the rule rests on, in the installed firebase-tools:
    convert = firebase_tools_file("lib/deploy/hosting/convertConfig.js")
    assert "has minInstances set and is in a rewrite" in convert
    tags = firebase_tools_file("lib/hosting/runTags.js")
    assert "latestReadyRevisionName" in tags
    assert "alreadyTagged" in tags
