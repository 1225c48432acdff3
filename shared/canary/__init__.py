"""Rollouts of models and policies with a statistical health gate, automatic rollback and
recovery.

``rollout/<name>`` in Firestore (:class:`Rollout`, :class:`RolloutStore`) says which share of
users (:func:`cohort_of`) gets the candidate version; the serving instances follow it
(:class:`RolloutFollower`). Each ``slo_monitor`` run judges every active rollout
(:class:`RolloutStep`): candidate versus stable (:mod:`shared.canary.compare`), the attached
SLOs' page-level burns and the breakers' heartbeats decide advance, hold or rollback, then
recovery (:func:`decide`); every transition is recorded and alerted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:
    from shared.canary.assignment import Assignment, RolloutFollower
    from shared.canary.cohort import COHORTS, Cohort, bucket_of, cohort_of
    from shared.canary.compare import CohortSample, ComparisonPolicy, MetricVerdict
    from shared.canary.errors import (
        CanaryConfigError,
        CanaryError,
        RolloutConflict,
        RolloutNotFound,
        StoreUnavailable,
    )
    from shared.canary.gate import Comparison, Decision, Signals, SloSignal, Verdict, decide
    from shared.canary.policy import DEFAULT_STAGES, RolloutPolicy, load_policy
    from shared.canary.rollout import Rollout, Stage, Status
    from shared.canary.step import RolloutStep, rollout_step
    from shared.canary.store import RolloutStore

__all__ = [
    "COHORTS",
    "DEFAULT_STAGES",
    "Assignment",
    "CanaryConfigError",
    "CanaryError",
    "Cohort",
    "CohortSample",
    "Comparison",
    "ComparisonPolicy",
    "Decision",
    "MetricVerdict",
    "Rollout",
    "RolloutConflict",
    "RolloutFollower",
    "RolloutNotFound",
    "RolloutPolicy",
    "RolloutStep",
    "RolloutStore",
    "Signals",
    "SloSignal",
    "Stage",
    "Status",
    "StoreUnavailable",
    "Verdict",
    "bucket_of",
    "cohort_of",
    "decide",
    "load_policy",
    "rollout_step",
]

__getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "Assignment": "assignment",
        "RolloutFollower": "assignment",
        "COHORTS": "cohort",
        "Cohort": "cohort",
        "bucket_of": "cohort",
        "cohort_of": "cohort",
        "CohortSample": "compare",
        "ComparisonPolicy": "compare",
        "MetricVerdict": "compare",
        "CanaryConfigError": "errors",
        "CanaryError": "errors",
        "RolloutConflict": "errors",
        "RolloutNotFound": "errors",
        "StoreUnavailable": "errors",
        "Comparison": "gate",
        "Decision": "gate",
        "Signals": "gate",
        "SloSignal": "gate",
        "Verdict": "gate",
        "decide": "gate",
        "DEFAULT_STAGES": "policy",
        "RolloutPolicy": "policy",
        "load_policy": "policy",
        "Rollout": "rollout",
        "Stage": "rollout",
        "Status": "rollout",
        "RolloutStep": "step",
        "rollout_step": "step",
        "RolloutStore": "store",
    },
)
