"""Chaos playbooks as data: validated YAML experiments run by a Chaos-Toolkit-style runner.

``load_playbook`` validates a whole file into frozen dataclasses before anything runs;
``run_playbook`` runs hypothesis → method → hypothesis → rollbacks and returns a
:class:`Journal`. CLI: ``python -m shared.playbook run playbooks/llm-down.yaml``.
"""

from __future__ import annotations

from shared.playbook.errors import ActivityFailed, PlaybookError, PlaybookInvalid, ToleranceError
from shared.playbook.journal import CriterionRecord, Journal, StepRecord
from shared.playbook.load import LoadReport, run_load
from shared.playbook.loader import DEFAULT_ALLOWED_MODULES, load_playbook, parse_playbook
from shared.playbook.model import (
    Activity,
    Criterion,
    HttpProvider,
    Hypothesis,
    LoadProvider,
    Pauses,
    Playbook,
    PythonProvider,
    SleepProvider,
)
from shared.playbook.runner import describe_provider, run_playbook
from shared.playbook.tolerance import Tolerance, ToleranceResult, check, lookup

__all__ = [
    "DEFAULT_ALLOWED_MODULES",
    "Activity",
    "ActivityFailed",
    "Criterion",
    "CriterionRecord",
    "HttpProvider",
    "Hypothesis",
    "Journal",
    "LoadProvider",
    "LoadReport",
    "Pauses",
    "Playbook",
    "PlaybookError",
    "PlaybookInvalid",
    "PythonProvider",
    "SleepProvider",
    "StepRecord",
    "Tolerance",
    "ToleranceError",
    "ToleranceResult",
    "check",
    "describe_provider",
    "load_playbook",
    "lookup",
    "parse_playbook",
    "run_load",
    "run_playbook",
]
