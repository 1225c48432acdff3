"""Chaos engineering for the resilience work: fault injection behind guardrails.

The two Cloud Functions (``functions/chaos_delay``, ``functions/chaos_proxy``) are thin handlers
over :mod:`shared.chaos.handlers`; everything they use is re-exported here except the Flask glue
(``handlers``) and the Firestore adapter (``firestore_store``), which import heavier libraries.
Configuration: :mod:`shared.chaos.config`. HTTP contract: ``openapi/chaos.yaml``.
"""

from __future__ import annotations

from shared.chaos.auth import ALLOWED_ROLES, FirebaseVerifier, Principal, TokenVerifier, authorize
from shared.chaos.config import (
    AuthMode,
    ChaosSettings,
    Upstream,
    parse_upstreams,
    settings_from_env,
)
from shared.chaos.delay import DelayOutcome, RandomSource, inject_delay, random_source
from shared.chaos.drop import DropOutcome, HeldConnection, hold_and_drop
from shared.chaos.errors import (
    AuthUnavailable,
    ChaosDisabled,
    ChaosError,
    ConfigurationError,
    ExperimentConflict,
    ExperimentNotFound,
    Forbidden,
    InvalidParameter,
    MethodNotAllowed,
    NotFound,
    StoreUnavailable,
    Unauthenticated,
    UnknownUpstream,
    UpstreamFailed,
)
from shared.chaos.experiments import (
    ActiveExperiments,
    Experiment,
    ExperimentChanged,
    ExperimentStore,
    ExperimentStoreFailed,
    MemoryExperimentStore,
)
from shared.chaos.params import (
    DelayParams,
    ExperimentSpec,
    Mode,
    ProxyParams,
    parse_delay_params,
    parse_experiment_spec,
    parse_proxy_params,
)
from shared.chaos.runtime import Runtime, runtime, use_runtime

__all__ = [
    "ALLOWED_ROLES",
    "ActiveExperiments",
    "AuthMode",
    "AuthUnavailable",
    "ChaosDisabled",
    "ChaosError",
    "ChaosSettings",
    "ConfigurationError",
    "DelayOutcome",
    "DelayParams",
    "DropOutcome",
    "Experiment",
    "ExperimentChanged",
    "ExperimentConflict",
    "ExperimentNotFound",
    "ExperimentSpec",
    "ExperimentStore",
    "ExperimentStoreFailed",
    "FirebaseVerifier",
    "Forbidden",
    "HeldConnection",
    "InvalidParameter",
    "MemoryExperimentStore",
    "MethodNotAllowed",
    "Mode",
    "NotFound",
    "Principal",
    "ProxyParams",
    "RandomSource",
    "Runtime",
    "StoreUnavailable",
    "TokenVerifier",
    "Unauthenticated",
    "UnknownUpstream",
    "Upstream",
    "UpstreamFailed",
    "authorize",
    "hold_and_drop",
    "inject_delay",
    "parse_delay_params",
    "parse_experiment_spec",
    "parse_proxy_params",
    "parse_upstreams",
    "random_source",
    "runtime",
    "settings_from_env",
    "use_runtime",
]
