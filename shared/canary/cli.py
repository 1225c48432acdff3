"""``python -m shared.canary evaluate``: run the gate once and print the decision as JSON.

Observations come from the command line (``--canary REQUESTS,ERRORS,P95_MS``) or from the local
SQLite request store (``--local-db``, ``--canary-function``, ``--baseline-function``,
``--window-s``). Thresholds and stages come from ``--config`` (YAML: ``thresholds:`` with the
fields of :class:`~shared.canary.gate.Thresholds`, optional ``stages:``). Nothing is applied:
this is the gate a pipeline step calls. Exit status: 0 advance or hold, 1 rollback, 2 invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TextIO

import yaml

from shared.canary.errors import CanaryConfigError, CanaryError
from shared.canary.gate import DEFAULT_STAGES, Observation, Thresholds, check_stages, evaluate

EXIT_OK = 0
EXIT_ROLLBACK = 1
EXIT_INVALID = 2  # argparse exits with 2 on bad arguments too
_THRESHOLD_FIELDS = tuple(f.name for f in fields(Thresholds))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m shared.canary", description="Canary health gate."
    )
    commands = root.add_subparsers(dest="command", required=True)
    ev = commands.add_parser("evaluate", help="decide advance / hold / rollback once")
    ev.add_argument("--config", type=Path, required=True, help="YAML with thresholds and stages")
    ev.add_argument("--percent", type=int, required=True, help="percent the canary serves now")
    ev.add_argument("--canary", help="REQUESTS,ERRORS,P95_MS of the canary")
    ev.add_argument("--baseline", help="REQUESTS,ERRORS,P95_MS of the baseline")
    ev.add_argument("--local-db", type=Path, help="SQLite request store (LOCAL_METRICS_DB)")
    ev.add_argument("--canary-function", help="function name of the canary in the store")
    ev.add_argument("--baseline-function", help="function name of the baseline in the store")
    ev.add_argument("--window-s", type=float, default=300.0, help="seconds back from now")
    return root


def load_config(path: Path) -> tuple[Thresholds, tuple[int, ...]]:
    """Thresholds and stages from a YAML file; :class:`CanaryConfigError` naming the problem."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CanaryConfigError(f"{path}: cannot read config: {exc}") from exc
    if not isinstance(document, Mapping) or not set(document) <= {"thresholds", "stages"}:
        raise CanaryConfigError(f"{path}: expected a mapping with thresholds and optional stages")
    raw = document.get("thresholds")
    if not isinstance(raw, Mapping):
        raise CanaryConfigError(f"{path}: thresholds must be a mapping")
    unknown = sorted(str(k) for k in raw if k not in _THRESHOLD_FIELDS)
    if unknown:
        raise CanaryConfigError(
            f"{path}: thresholds: unknown field {unknown[0]!r}; "
            f"allowed: {', '.join(_THRESHOLD_FIELDS)}"
        )
    try:
        thresholds = Thresholds(**raw)
    except TypeError as exc:
        raise CanaryConfigError(f"{path}: thresholds: {exc}") from exc
    stages = check_stages(document.get("stages", list(DEFAULT_STAGES)))
    return thresholds, stages


def parse_observation(text: str, label: str) -> Observation:
    """``"500,1,420.5"`` (requests, errors, p95 ms; ``-`` for no latency) → Observation."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 3:
            raise ValueError
        p95 = None if parts[2] in ("", "-") else float(parts[2])
        return Observation(int(parts[0]), int(parts[1]), p95)
    except ValueError:
        raise CanaryConfigError(
            f"--{label} must be REQUESTS,ERRORS,P95_MS like 500,1,420.5; got {text!r}"
        ) from None


def _observations(args: argparse.Namespace) -> tuple[Observation, Observation | None]:
    if args.canary:
        baseline = parse_observation(args.baseline, "baseline") if args.baseline else None
        return parse_observation(args.canary, "canary"), baseline
    if args.local_db and args.canary_function:
        from shared.canary.observations import observe_local
        from shared.slo.local_store import LocalStore

        store = LocalStore(args.local_db)
        end = time.time()
        start = end - args.window_s
        canary = observe_local(store, [args.canary_function], start, end)
        baseline = (
            observe_local(store, [args.baseline_function], start, end)
            if args.baseline_function
            else None
        )
        return canary, baseline
    raise CanaryConfigError("give --canary, or --local-db with --canary-function")


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        thresholds, stages = load_config(args.config)
        canary, baseline = _observations(args)
        decision = evaluate(args.percent, canary, thresholds, baseline=baseline, stages=stages)
    except CanaryError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return EXIT_INVALID
    report: dict[str, Any] = {
        **asdict(decision),
        "canary": asdict(canary),
        "baseline": asdict(baseline) if baseline else None,
    }
    print(json.dumps(report, indent=2), file=out or sys.stdout)
    return EXIT_ROLLBACK if decision.verdict == "rollback" else EXIT_OK
