"""Chaos engineering for the resilience work: fault injection behind guardrails.

The two Cloud Functions (``functions/chaos_delay``, ``functions/chaos_proxy``) are thin handlers
over :mod:`shared.chaos.delay_handler` and :mod:`shared.chaos.proxy_handler` (with
:mod:`shared.chaos.experiments_api`); everything they use is re-exported here except the Flask
glue (the handlers and :mod:`shared.chaos.request`) and the Firestore adapter
(``firestore_store``), which import heavier libraries.
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
    "Busy": "errors",
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
    "ExperimentDocument": "experiments",
    "ExperimentNotFound": "errors",
    "ExperimentSpec": "params",
    "ExperimentStore": "experiments",
    "ExperimentStoreFailed": "experiments",
    "FirebaseVerifier": "auth",
    "Forbidden": "errors",
    "HeldConnection": "drop",
    "HeldDrops": "drop",
    "InvalidParameter": "errors",
    "MemoryExperimentStore": "experiments",
    "MethodNotAllowed": "errors",
    "Mode": "params",
    "NotFound": "errors",
    "Principal": "auth",
    "ProxyParams": "params",
    "RandomSource": "delay",
    "Runtime": "runtime",
    "StopSelector": "params",
    "StoreContended": "errors",
    "StoreUnavailable": "errors",
    "TokenVerifier": "auth",
    "TooManyDrops": "errors",
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
    "parse_stop_selector": "params",
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
    "Busy",
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
    "ExperimentDocument",
    "ExperimentNotFound",
    "ExperimentSpec",
    "ExperimentStore",
    "ExperimentStoreFailed",
    "FirebaseVerifier",
    "Forbidden",
    "HeldConnection",
    "HeldDrops",
    "InvalidParameter",
    "MemoryExperimentStore",
    "MethodNotAllowed",
    "Mode",
    "NotFound",
    "Principal",
    "ProxyParams",
    "RandomSource",
    "Runtime",
    "StopSelector",
    "StoreContended",
    "StoreUnavailable",
    "TokenVerifier",
    "TooManyDrops",
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
    "parse_stop_selector",
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
    from shared.chaos.delay import (
        DelayOutcome,
        RandomSource,
        inject_delay,
        random_source,
    )
    from shared.chaos.drop import (
        DropOutcome,
        HeldConnection,
        HeldDrops,
        hold_and_drop,
    )
    from shared.chaos.errors import (
        AuthUnavailable,
        Busy,
        ChaosDisabled,
        ChaosError,
        ConfigurationError,
        ExperimentConflict,
        ExperimentNotFound,
        Forbidden,
        InvalidParameter,
        MethodNotAllowed,
        NotFound,
        StoreContended,
        StoreUnavailable,
        TooManyDrops,
        Unauthenticated,
        UnknownUpstream,
        UpstreamFailed,
    )
    from shared.chaos.experiments import (
        ActiveExperiments,
        Experiment,
        ExperimentChanged,
        ExperimentDocument,
        ExperimentStore,
        ExperimentStoreFailed,
        MemoryExperimentStore,
    )
    from shared.chaos.params import (
        DelayParams,
        ExperimentSpec,
        Mode,
        ProxyParams,
        StopSelector,
        parse_delay_params,
        parse_experiment_spec,
        parse_proxy_params,
        parse_stop_selector,
    )
    from shared.chaos.runtime import (
        Runtime,
        use_runtime,
    )
