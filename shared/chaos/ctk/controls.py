"""Chaos Toolkit controls of the project: rehearsal setting, safeguard, measured numbers.

Declare in a playbook::

    controls:
      - name: project
        provider:
          type: python
          module: shared.chaos.ctk.controls
          arguments:
            rehearsal: {load_s: 8}

Before the run, with ``PLAYBOOK_REHEARSAL=1``, the ``rehearsal`` values replace the playbook's
configuration (:mod:`shared.chaos.ctk.rehearsal`).

Safeguards: a steady state that does not hold *before* the method makes the run ``failed``
(Chaos Toolkit would end it ``completed`` with exit 0). An action of the method that fails, or
an ``http`` action answered 4xx/5xx (Chaos Toolkit only warns about those), interrupts the run:
a fault that never started must not let the steady state after the method "hold" and pass.

After the run, prints one table of the numbers measured from outside (see
:mod:`shared.chaos.ctk.measurements`) with the verdict, and adds them to the journal under
``extensions`` (name ``measurements``), so ``.local/journal-<name>.json`` carries them.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from shared.chaos.ctk.measurements import measurements
from shared.chaos.ctk.rehearsal import REHEARSAL_ENV, apply_rehearsal, rehearsing

__all__ = [
    "after_activity_control",
    "after_experiment_control",
    "after_method_control",
    "before_experiment_control",
    "before_method_control",
]

EXTENSION = "measurements"
_phase = {"in_method": False}
logger = logging.getLogger("chaostoolkit")


def before_experiment_control(
    context: Any,
    configuration: Any = None,
    experiment: Any = None,
    rehearsal: Any = None,
    **kwargs: Any,
) -> None:
    """With ``PLAYBOOK_REHEARSAL=1``, switch ``configuration`` to the rehearsal values."""
    _phase["in_method"] = False
    if not rehearsal or not isinstance(configuration, dict) or not rehearsing():
        return
    from chaoslib.configuration import load_configuration  # type: ignore[import-untyped]

    declared = (experiment or {}).get("configuration") or {}
    applied = apply_rehearsal(configuration, load_configuration(declared), rehearsal)
    logger.info("rehearsal setting (%s=1): %s", REHEARSAL_ENV, applied)


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
    if isinstance(value, list):
        return "[" + " ".join("-" if v is None else _cell(v) for v in value) + "]"
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
    before = (state.get("steady_states") or {}).get("before") or {}
    if before.get("steady_state_met") is False and state.get("status") == "completed":
        # Chaos Toolkit ends such a run "completed" (exit 0): the steady state never held, so
        # nothing was tested. Report it as failed (exit 1), as a probe error would be.
        state["status"] = "failed"
        logger.error("safeguard: the steady state did not hold before the method: run failed")
    summary = measurements(state)
    verdict = "deviated" if state.get("deviated") else str(state.get("status"))
    title = str((context or {}).get("title", "experiment")) if isinstance(context, dict) else ""
    extensions = state.setdefault("extensions", [])
    if isinstance(extensions, list):
        extensions.append({"name": EXTENSION, "verdict": verdict, **summary})
    render(summary, title, verdict)
