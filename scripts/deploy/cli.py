"""``python -m scripts.deploy [--dry-run] [STEP] [FUNCTION...]``: one step per call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Final

from scripts import bundle
from scripts.catalog import FUNCTIONS, FunctionSpec
from scripts.deploy.errors import DeployError
from scripts.deploy.runners import DryRunner, GcloudRunner, Runner
from scripts.deploy.settings import Settings
from scripts.deploy.steps import deploy, plan, promote, rollback, shift
from shared.settings import SettingsError

STEPS: Final = ("deploy", "shift", "promote", "rollback")


def chosen(step: str, names: Sequence[str]) -> list[FunctionSpec]:
    """The functions a step acts on: those named, else all (deploy) or the blue/green ones."""
    known = {s.name for s in FUNCTIONS}
    unknown = sorted(set(names) - known)
    if unknown:
        valid = ", ".join(s.name for s in FUNCTIONS)
        raise DeployError(f"unknown function(s) {', '.join(unknown)}: valid: {valid}")
    if names:
        return [s for s in FUNCTIONS if s.name in names]
    return [s for s in FUNCTIONS if step == "deploy" or s.blue_green]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.deploy",
        description="Deploy the Cloud Functions blue/green and move their traffic (gcloud).",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the commands without calling gcloud"
    )
    parser.add_argument(
        "--percent", type=int, help="shift: the candidate's share of the traffic (1-100)"
    )
    parser.add_argument(
        "words",
        nargs="*",
        metavar="[STEP] FUNCTION",
        help=f"a step ({', '.join(STEPS)}; default deploy), then functions (default: all)",
    )
    # Intermixed: `shift --percent 10 chaos_proxy`, as `make deploy` writes it.
    args = parser.parse_intermixed_args(argv)
    words: list[str] = args.words
    step = words.pop(0) if words and words[0] in STEPS else "deploy"
    try:
        if (step == "shift") != (args.percent is not None):
            raise DeployError("--percent goes with shift, and shift needs it")
        settings = Settings.from_env(dry_run=args.dry_run)
        functions = chosen(step, words)
        runner: Runner = DryRunner() if args.dry_run else GcloudRunner()
        if step == "deploy" and args.dry_run:
            plan(settings, functions)
            return 0
        if step == "deploy":
            deploy(settings, runner, functions)
            return 0
        for spec in functions:
            if step == "shift":
                shift(spec, args.percent, settings, runner)
            elif step == "promote":
                promote(spec, settings, runner)
            else:
                rollback(spec, settings, runner)
    except (DeployError, SettingsError, bundle.BundleError) as exc:
        print(f"deploy: {exc}", file=sys.stderr)
        return 1
    return 0
