"""Running gcloud commands, or only showing them (dry runs)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from typing import Protocol

from scripts.catalog import REPO
from scripts.deploy.errors import DeployError


class Runner(Protocol):
    """Runs (or only shows) gcloud commands; ``last_ok`` tells whether the last one succeeded,
    ``last_error`` what it wrote to stderr when run with ``check=False``."""

    dry: bool
    last_ok: bool
    last_error: str

    def run(self, argv: Sequence[str], *, capture: bool = False, check: bool = True) -> str:
        """Run ``argv``; its stdout if ``capture``; raise :class:`DeployError` if ``check``."""
        ...

    def note(self, text: str) -> None:
        """Show a comment line."""
        ...


class DryRunner:
    """Prints each command (``shlex.join``) and notes (``# ...``) instead of running them."""

    dry = True

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.last_ok = True
        self.last_error = ""

    def run(self, argv: Sequence[str], *, capture: bool = False, check: bool = True) -> str:
        self.commands.append(list(argv))
        print(shlex.join(argv), flush=True)
        self.last_ok = True
        return ""

    def note(self, text: str) -> None:
        print(f"# {text}", flush=True)


class GcloudRunner:
    """Runs each command with subprocess, echoing it first."""

    dry = False

    def __init__(self) -> None:
        self.last_ok = True
        self.last_error = ""

    def run(self, argv: Sequence[str], *, capture: bool = False, check: bool = True) -> str:
        print(f"+ {shlex.join(argv)}", flush=True)
        try:
            done = subprocess.run(
                list(argv),
                stdout=subprocess.PIPE if capture else None,
                stderr=subprocess.PIPE if not check else None,
                text=True,
                check=False,
                cwd=REPO,  # --source=build/<name> is relative to the repository root
            )
        except OSError as exc:
            raise DeployError(
                f"cannot run {argv[0]}: {exc} (is the gcloud CLI installed?)"
            ) from exc
        self.last_ok = done.returncode == 0
        self.last_error = (done.stderr or "").strip()
        if check and not self.last_ok:
            raise DeployError(f"`{shlex.join(argv)}` failed with exit code {done.returncode}")
        return (done.stdout or "").strip() if capture else ""

    def note(self, text: str) -> None:
        print(f"# {text}", flush=True)
