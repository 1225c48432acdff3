"""``python -m shared.canary``: start, show or roll back a rollout in Firestore.

``start NAME --service graphAsk --stable primary-llm --candidate candidate-llm
[--slos graphAsk-latency,graphAsk-errors] [--breakers llm:candidate-llm] [--stages 10,50,100]``
begins a rollout (the monitor's gate takes it from there); ``show NAME`` prints the document and
its transitions as JSON; ``rollback NAME --reason TEXT`` halts it by hand (recorded as decided by
``operator``). Firestore is the ambient project's (``FIRESTORE_EMULATOR_HOST`` honoured).
Exit status: 0 done, 1 the store failed or refused, 2 invalid arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TextIO

from shared.canary.errors import CanaryConfigError, CanaryError
from shared.canary.gate import Decision
from shared.canary.store import RolloutStore

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _stages(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"stages must be integers like 10,50,100: {text!r}"
        ) from None


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m shared.canary", description="Rollouts.")
    commands = root.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="begin rolling a candidate out")
    start.add_argument("name")
    start.add_argument("--service", required=True, help="the request records' name (graphAsk)")
    start.add_argument("--stable", required=True, help="the version serving now")
    start.add_argument("--candidate", required=True, help="the version to roll out")
    start.add_argument("--slos", type=_names, default=[], help="comma list of SLO names")
    start.add_argument("--breakers", type=_names, default=[], help="comma list (default: all)")
    start.add_argument("--stages", type=_stages, default=[10, 50, 100])
    show = commands.add_parser("show", help="the rollout and its transitions as JSON")
    show.add_argument("name")
    back = commands.add_parser("rollback", help="halt the rollout by hand")
    back.add_argument("name")
    back.add_argument("--reason", required=True)
    return root


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    store: RolloutStore | None = None,
) -> int:
    args = parser().parse_args(argv)
    out = out or sys.stdout
    store = store or RolloutStore()
    now = time.time()
    try:
        if args.command == "start":
            rollout = store.start(
                args.name, service=args.service, stable=args.stable, candidate=args.candidate,
                now=now, stages=args.stages, slos=args.slos, breakers=args.breakers,
            )  # fmt: skip
            print(json.dumps(asdict(rollout), indent=2), file=out)
        elif args.command == "show":
            rollout = store.get(args.name)
            shown = {"rollout": asdict(rollout), "transitions": store.transitions(args.name)}
            print(json.dumps(shown, indent=2, default=str), file=out)
        else:
            rollout = store.get(args.name)
            decision = Decision("rollback", rollout.percent, 0, "operator", (args.reason,))
            print(json.dumps(asdict(store.apply(rollout, decision, now)), indent=2), file=out)
    except CanaryConfigError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except CanaryError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
