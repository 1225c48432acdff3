"""``python -m shared.playbook run PLAYBOOK [--dry-run] [--journal FILE] [--var key=value]``.

Exit status: 0 when the hypothesis held and every success criterion was met (or a dry run
validated), 1 when the run deviated, failed, was interrupted or a rollback failed, 2 when the
playbook or the command line is invalid. The first SIGINT stops the run and goes to the
rollbacks; further SIGINTs are ignored until the rollbacks end.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from shared.playbook.errors import PlaybookError
from shared.playbook.journal import Journal, StepRecord
from shared.playbook.loader import DEFAULT_ALLOWED_MODULES, load_playbook
from shared.playbook.runner import run_playbook

EXIT_OK = 0
EXIT_DEVIATED = 1
EXIT_INVALID = 2  # argparse exits with 2 on bad arguments too


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m shared.playbook", description="Run chaos playbooks."
    )
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="validate and run a playbook")
    run.add_argument("playbook", type=Path)
    run.add_argument("--dry-run", action="store_true", help="validate and print the plan only")
    run.add_argument("--journal", type=Path, help="write the journal (JSON) to this file")
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a configuration value (repeatable)",
    )
    run.add_argument(
        "--allow-module",
        action="append",
        default=[],
        metavar="PREFIX",
        help="also allow python providers under PREFIX (shared. is always allowed)",
    )
    validate = commands.add_parser("validate", help="validate a playbook only")
    validate.add_argument("playbook", type=Path)
    validate.add_argument("--var", action="append", default=[], metavar="KEY=VALUE")
    validate.add_argument("--allow-module", action="append", default=[], metavar="PREFIX")
    return root


def parse_vars(pairs: Sequence[str]) -> dict[str, str]:
    """``["a=1", "b=x"]`` → ``{"a": "1", "b": "x"}``; PlaybookError for an item without ``=``."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PlaybookError(f"--var {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value
    return out


@contextlib.contextmanager
def sigint_stops(stop: threading.Event, out: TextIO) -> Iterator[None]:
    """First SIGINT: set ``stop`` and interrupt; later ones are ignored (rollbacks must finish)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            print("interrupt ignored: rollbacks are running", file=out, flush=True)
            return
        stop.set()
        print("interrupted: running rollbacks", file=out, flush=True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def print_step(out: TextIO) -> Callable[[StepRecord], None]:
    def show(step: StepRecord) -> None:
        verdict = ""
        if step.tolerance_met is not None:
            verdict = (
                " (tolerance met)"
                if step.tolerance_met
                else f" (DEVIATED: {step.tolerance_reason})"
            )
        error = f": {step.exception}" if step.exception else ""
        print(
            f"[{step.phase}] {step.type} {step.name}: {step.status}{error}{verdict} "
            f"— {step.provider}",
            file=out,
            flush=True,
        )

    return show


def summary(journal: Journal) -> str:
    lines = [f"{journal.title}: {journal.status} in {journal.duration_s:.3f} s"]
    for criterion in journal.criteria:
        if journal.dry_run:
            lines.append(f"  criterion {criterion.name}: {criterion.tolerance} (planned)")
            continue
        mark = "met" if criterion.met else "NOT met"
        detail = f" (actual {criterion.actual!r})" if criterion.actual is not None else ""
        reason = f": {criterion.reason}" if criterion.reason and not criterion.met else ""
        lines.append(f"  criterion {criterion.name}: {criterion.tolerance} {mark}{detail}{reason}")
    if not journal.rollbacks_succeeded:
        lines.append("  a rollback FAILED: check the system by hand")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    stream = out or sys.stdout
    args = parser().parse_args(argv)
    # Resilience events (breakers opening, retries) are logged: show them as one line each.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        variables = parse_vars(args.var)
        allowed = (*DEFAULT_ALLOWED_MODULES, *args.allow_module)
        playbook = load_playbook(args.playbook, variables=variables, allowed_modules=allowed)
    except PlaybookError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.command == "validate":
        print(f"{playbook.source}: valid", file=stream)
        return EXIT_OK
    stop = threading.Event()
    with sigint_stops(stop, stream):
        journal = run_playbook(
            playbook, dry_run=args.dry_run, stop=stop, on_step=print_step(stream)
        )
    print(summary(journal), file=stream)
    if args.journal is not None:
        args.journal.write_text(journal.to_json() + "\n", encoding="utf-8")
    return EXIT_OK if journal.ok else EXIT_DEVIATED
