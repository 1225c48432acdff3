"""Canary health gate with automatic rollback.

:func:`evaluate` is the pure gate (advance / hold / rollback with reasons);
:class:`CanaryController` applies it to a :class:`RolloutTarget`: the Firestore document
``rollout/<name>`` (:class:`FirestoreRollout`) or a dry run printing ``gcloud`` traffic-split
commands (:class:`GcloudTrafficPlan`).
"""

from __future__ import annotations

from shared.canary.controller import CanaryController, CanaryDecided, DecisionJournal, StepResult
from shared.canary.errors import (
    CanaryConfigError,
    CanaryError,
    RolloutConflict,
    RolloutHalted,
    TargetUnavailable,
)
from shared.canary.firestore import FirestoreRollout
from shared.canary.gate import (
    DEFAULT_STAGES,
    Decision,
    Observation,
    Thresholds,
    Verdict,
    check_stages,
    evaluate,
    next_stage,
)
from shared.canary.observations import observe_local
from shared.canary.targets import GcloudTrafficPlan, MemoryRollout, RolloutState, RolloutTarget

__all__ = [
    "DEFAULT_STAGES",
    "CanaryConfigError",
    "CanaryController",
    "CanaryDecided",
    "CanaryError",
    "Decision",
    "DecisionJournal",
    "FirestoreRollout",
    "GcloudTrafficPlan",
    "MemoryRollout",
    "Observation",
    "RolloutConflict",
    "RolloutHalted",
    "RolloutState",
    "RolloutTarget",
    "StepResult",
    "TargetUnavailable",
    "Thresholds",
    "Verdict",
    "check_stages",
    "evaluate",
    "next_stage",
    "observe_local",
]
