"""Chaos Toolkit controls of the project: the measured numbers, printed and journaled.

Declare in a playbook::

    controls:
      - name: measurements
        provider:
          type: python
          module: shared.chaos.ctk.controls

A safeguard: an action of the method that fails, or an ``http`` action answered 4xx/5xx (Chaos
Toolkit only warns about those), interrupts the run. A fault that never started must not let the
steady state after the method "hold" and pass.

After the run, prints one table of the numbers measured from outside (see
:mod:`shared.chaos.ctk.measurements`) with the verdict, and adds them to the journal under
``extensions`` (name ``measurements``), so ``.local/journal-<name>.json`` carries them.
"""

from __future__ import annotations

import sys
from typing import Any

from shared.chaos.ctk.measurements import measurements

__all__ = [
    "after_activity_control",
    "after_experiment_control",
    "after_method_control",
    "before_method_control",
]

EXTENSION = "measurements"
_phase = {"in_method": False}


def before_method_control(context: Any, **kwargs: Any) -> None:
    _phase["in_method"] = True


def after_method_control(context: Any, **kwargs: Any) -> None:
    _phase["in_method"] = False


def failed_action(activity: Any, run: Any) -> str | None:
    """Why the method action ``activity`` failed according to its ``run``, or None."""
    if not isinstance(activity, dict) or activity.get("type") != "action":
        return None
    if not isinstance(run, dict):
        return None
    if run.get("status") == "failed":
        return f"action {activity.get('name')!r} failed: {run.get('exception') or 'no detail'}"
    output = run.get("output")
    provider = activity.get("provider") or {}
    if provider.get("type") == "http" and isinstance(output, dict):
        status = output.get("status")
        if isinstance(status, int) and status >= 400:
            return f"action {activity.get('name')!r} answered HTTP {status}: {output.get('body')}"
    return None


def after_activity_control(context: Any, state: Any = None, **kwargs: Any) -> None:
    """Interrupt the run when an action of the method failed (see the module docstring)."""
    if not _phase["in_method"]:
        return
    reason = failed_action(context, state)
    if reason is not None:
        from chaoslib.exceptions import InterruptExecution  # type: ignore[import-untyped]

        _phase["in_method"] = False
        raise InterruptExecution(f"safeguard: {reason}; the fault may not be in place")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def render(summary: dict[str, Any], title: str, verdict: str) -> None:
    """The summary as a table on stderr (the terminal of ``chaos run``)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{title}: {verdict}", show_lines=False)
    for column in ("phase", "activity", "met", "numbers"):
        table.add_column(column, overflow="fold")
    for row in summary["rows"]:
        met = row["tolerance_met"]
        numbers = "  ".join(f"{k}={_cell(v)}" for k, v in row["numbers"].items())
        table.add_row(row["phase"], str(row["activity"]), "" if met is None else str(met), numbers)
    console = Console(file=sys.stderr, highlight=False, width=160)
    console.print(table)
    for name, value in summary["derived"].items():
        console.print(f"  {name} = {_cell(value)}", markup=False)


def after_experiment_control(context: Any, state: Any = None, **kwargs: Any) -> None:
    """Summarise the journal ``state``: print the table, journal the numbers."""
    if not isinstance(state, dict):
        return
    summary = measurements(state)
    verdict = "deviated" if state.get("deviated") else str(state.get("status"))
    title = str((context or {}).get("title", "experiment")) if isinstance(context, dict) else ""
    extensions = state.setdefault("extensions", [])
    if isinstance(extensions, list):
        extensions.append({"name": EXTENSION, "verdict": verdict, **summary})
    render(summary, title, verdict)
