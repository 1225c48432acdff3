"""scripts/bundle.py: what goes into a function's deploy bundle, checked on a synthetic repo."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from scripts import bundle
from scripts.catalog import FUNCTIONS, REPO, FunctionSpec

DEMO = FunctionSpec(name="demo", local_port=0, data_files=("config/demo.yaml",))


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with the real requirements.txt and .gcloudignore and a demo function."""
    shutil.copy(REPO / "requirements.txt", tmp_path / "requirements.txt")
    shutil.copy(REPO / ".gcloudignore", tmp_path / ".gcloudignore")
    write(tmp_path, "shared/__init__.py", '"""Shared."""\n')
    write(
        tmp_path,
        "shared/alpha/__init__.py",
        """
        from __future__ import annotations

        from typing import TYPE_CHECKING

        from . import helpers
        from .helpers import twice

        if TYPE_CHECKING:
            from google.cloud import firestore  # typing only: not a requirement

        try:
            import redis  # optional: not a requirement
        except ImportError:
            redis = None

        __all__ = ["helpers", "twice"]
        """,
    )
    write(
        tmp_path,
        "shared/alpha/helpers.py",
        """
        import json

        from shared.beta import base


        def twice(x: int) -> int:
            import yaml  # imported lazily, still a requirement

            return base.ONE * x * 2 + len(json.dumps(yaml.safe_load("[]")))
        """,
    )
    write(tmp_path, "shared/alpha/tests/test_x.py", "import pytest\n")
    write(tmp_path, "shared/beta/__init__.py", "")
    write(tmp_path, "shared/beta/base.py", "import requests\n\nONE = 1\n")
    write(tmp_path, "shared/gamma/__init__.py", "import tenacity\n")
    write(tmp_path, "config/demo.yaml", "a: 1\n")
    write(tmp_path, "config/other.yaml", "b: 2\n")
    write(
        tmp_path,
        "functions/demo/main.py",
        """
        import flask  # provided by functions-framework: allowed without its own pin
        import functions_framework

        from shared.alpha import twice


        @functions_framework.http
        def demo(request: flask.Request) -> tuple[dict[str, int], int]:
            return {"value": twice(int(request.args.get("x", "1")))}, 200
        """,
    )
    return tmp_path


def test_bundle_holds_main_the_imported_shared_packages_and_data(repo: Path) -> None:
    built = bundle.build(DEMO, repo=repo)

    files = {str(p.relative_to(built.path)) for p in built.path.rglob("*") if p.is_file()}
    assert files == {
        "main.py",
        "shared/__init__.py",
        "shared/alpha/__init__.py",
        "shared/alpha/helpers.py",
        "shared/beta/__init__.py",
        "shared/beta/base.py",
        "config/demo.yaml",
        "requirements.txt",
        ".gcloudignore",
    }
    assert built.shared_packages == ("alpha", "beta")
    assert (built.path / "main.py").read_text() == (repo / "functions/demo/main.py").read_text()


def test_bundle_requirements_are_the_top_level_pins_of_what_is_imported(repo: Path) -> None:
    built = bundle.build(DEMO, repo=repo)

    pins = bundle.read_pins(REPO / "requirements.txt")
    expected = [pins[n] for n in pins if n in {"functions-framework", "requests", "pyyaml"}]
    assert list(built.requirements) == expected
    lines = (built.path / "requirements.txt").read_text().splitlines()
    assert [x for x in lines if not x.startswith("#")] == expected


def test_unpinned_import_is_an_error_naming_module_and_file(repo: Path) -> None:
    # hypothesis is installed (dev only) but not pinned in the runtime requirements.
    write(repo, "shared/beta/base.py", "import hypothesis\n\nONE = 1\n")

    with pytest.raises(bundle.BundleError, match=r"shared/beta/base.py imports hypothesis"):
        bundle.build(DEMO, repo=repo)


def test_import_of_an_uninstalled_module_is_an_error(repo: Path) -> None:
    write(repo, "shared/beta/base.py", "import no_such_module_xyz\n\nONE = 1\n")

    with pytest.raises(bundle.BundleError, match="no_such_module_xyz, which no installed"):
        bundle.build(DEMO, repo=repo)


def test_importing_from_functions_is_rejected(repo: Path) -> None:
    write(repo, "functions/demo/main.py", "from functions.other import main\n")

    with pytest.raises(bundle.BundleError, match="cannot import from functions/"):
        bundle.build(DEMO, repo=repo)


def test_missing_main_and_missing_data_file_are_errors(repo: Path) -> None:
    with pytest.raises(bundle.BundleError, match=r"functions/nothing/main\.py does not exist"):
        bundle.build(FunctionSpec(name="nothing", local_port=0), repo=repo)
    (repo / "config/demo.yaml").unlink()
    with pytest.raises(bundle.BundleError, match=r"needs config/demo\.yaml"):
        bundle.build(DEMO, repo=repo)


def test_operator_tooling_is_left_out_and_importing_it_is_an_error(repo: Path) -> None:
    """shared.chaos.ctk runs under `chaos run` on the operator's machine: its imports (an
    unpinned hypothesis stands in for chaostoolkit-lib) must not stop a function's bundle."""
    write(repo, "shared/chaos/__init__.py", "")
    write(repo, "shared/chaos/core.py", "VALUE = 2\n")
    write(repo, "shared/chaos/ctk/__init__.py", "")
    write(
        repo, "shared/chaos/ctk/probes.py", "import hypothesis\n\nfrom shared.chaos import core\n"
    )
    write(repo, "shared/beta/base.py", "from shared.chaos.core import VALUE as ONE\n")

    built = bundle.build(DEMO, repo=repo)

    files = {str(p.relative_to(built.path)) for p in built.path.rglob("*.py")}
    assert "shared/chaos/core.py" in files
    assert not [f for f in files if f.startswith("shared/chaos/ctk")]
    write(repo, "shared/beta/base.py", "from shared.chaos.ctk import probes\n\nONE = 1\n")
    with pytest.raises(bundle.BundleError, match=r"imports shared\.chaos\.ctk\.probes, but"):
        bundle.build(DEMO, repo=repo)


def test_rebuild_replaces_stale_files(repo: Path) -> None:
    first = bundle.build(DEMO, repo=repo)
    (first.path / "stale.py").write_text("x = 1\n")

    second = bundle.build(DEMO, repo=repo)

    assert not (second.path / "stale.py").exists()


def test_read_pins_rejects_a_range(tmp_path: Path) -> None:
    req = tmp_path / "requirements.txt"
    req.write_text("# comment\nrequests==2.0\nflask>=3\n")

    with pytest.raises(bundle.BundleError, match=r"requirements.txt:3: not an exact pin"):
        bundle.read_pins(req)


def test_gcloudignore_keeps_tests_out_and_code_in() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".gcloudignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "tests/" in patterns
    assert "__pycache__/" in patterns
    shipped = {"main.py", "shared/", "config/", "requirements.txt"}
    assert not shipped & set(patterns)
    assert not any(p.startswith("!") for p in patterns)


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda s: s.name)
def test_repository_bundles_pin_exactly_the_top_level_versions(
    spec: FunctionSpec, tmp_path: Path
) -> None:
    built = bundle.build(spec, dest=tmp_path / spec.name)

    pins = bundle.read_pins(REPO / "requirements.txt")
    assert built.requirements
    assert set(built.requirements) <= set(pins.values())
    assert pins["functions-framework"] in built.requirements
    assert (tmp_path / spec.name / "main.py").read_text() == (
        REPO / "functions" / spec.name / "main.py"
    ).read_text()
    for data in spec.data_files:
        assert (tmp_path / spec.name / data).is_file()
    shipped = {str(p.relative_to(built.path)) for p in built.path.rglob("*") if p.is_file()}
    assert not [p for p in shipped if "/tests/" in p or p.startswith("tests/")]
    assert not [p for p in shipped if "__pycache__" in p]


def test_only_the_monitor_ships_cloud_monitoring_and_its_slo_file(tmp_path: Path) -> None:
    built = {s.name: bundle.build(s, dest=tmp_path / s.name) for s in FUNCTIONS}

    def has(name: str, dist: str) -> bool:
        return any(r.lower().startswith(dist + "==") for r in built[name].requirements)

    assert has("slo_monitor", "google-cloud-monitoring")
    assert not has("chaos_delay", "google-cloud-monitoring")
    assert "slo" not in built["chaos_delay"].shared_packages
    assert (tmp_path / "slo_monitor/config/slos.yaml").is_file()
    assert not (tmp_path / "chaos_delay/config").exists()
