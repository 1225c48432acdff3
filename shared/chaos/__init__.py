"""Chaos engineering for the resilience work: fault injection behind guardrails.

The two Cloud Functions (``functions/chaos_delay``, ``functions/chaos_proxy``) are thin handlers
over :mod:`shared.chaos.handlers`; everything they use is re-exported here except the Flask glue
(``handlers``) and the Firestore adapter (``firestore_store``), which import heavier libraries.
Configuration: :mod:`shared.chaos.config`. HTTP contract: ``openapi/chaos.yaml``.

Submodules are imported on first use of one of their names (PEP 562), so that an entry module pays
only for what it uses (``chaos_delay`` never loads the experiments machinery): cold start stays
small. The current runtime is ``shared.chaos.runtime.runtime()``; it is not re-exported here,
because ``shared.chaos.runtime`` is the submodule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

# name -> submodule that defines it, imported on first access.
_EXPORTS: dict[str, str] = {
    "ALLOWED_ROLES": "auth",
    "ActiveExperiments": "experiments",
    "AuthMode": "config",
    "AuthUnavailable": "errors",
    "ChaosDisabled": "errors",
    "ChaosError": "errors",
    "ChaosSettings": "config",
    "ConfigurationError": "errors",
    "DelayOutcome": "delay",
    "DelayParams": "params",
    "DropOutcome": "drop",
    "Experiment": "experiments",
    "ExperimentChanged": "experiments",
    "ExperimentConflict": "errors",
    "ExperimentNotFound": "errors",
    "ExperimentSpec": "params",
    "ExperimentStore": "experiments",
    "ExperimentStoreFailed": "experiments",
    "FirebaseVerifier": "auth",
    "Forbidden": "errors",
    "HeldConnection": "drop",
    "InvalidParameter": "errors",
    "MemoryExperimentStore": "experiments",
    "MethodNotAllowed": "errors",
    "Mode": "params",
    "NotFound": "errors",
    "Principal": "auth",
    "ProxyParams": "params",
    "RandomSource": "delay",
    "Runtime": "runtime",
    "StoreUnavailable": "errors",
    "TokenVerifier": "auth",
    "Unauthenticated": "errors",
    "UnknownUpstream": "errors",
    "Upstream": "config",
    "UpstreamFailed": "errors",
    "authorize": "auth",
    "hold_and_drop": "drop",
    "inject_delay": "delay",
    "parse_delay_params": "params",
    "parse_experiment_spec": "params",
    "parse_proxy_params": "params",
    "parse_upstreams": "config",
    "random_source": "delay",
    "settings_from_env": "config",
    "use_runtime": "runtime",
}

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
    "settings_from_env",
    "use_runtime",
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)


if TYPE_CHECKING:
    from shared.chaos.auth import (
        ALLOWED_ROLES,
        FirebaseVerifier,
        Principal,
        TokenVerifier,
        authorize,
    )
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
    from shared.chaos.runtime import Runtime, use_runtime
