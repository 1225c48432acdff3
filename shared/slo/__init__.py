"""SLO monitoring: SLOs as YAML, SLIs from Cloud Monitoring or a local store, burn-rate alerts.

The pure core (configuration, evaluation, burn rates) is re-exported here, loaded on first
access: the local stack's request sink (``REQUEST_SINK``) imports :mod:`shared.slo.local_store`
in every local function, and ``python -m shared.slo.config`` must not find its module already
imported. Recording (Firestore), alerting (Slack) and the run pipeline are
:mod:`shared.slo.recording`, :mod:`shared.slo.alerting` and :mod:`shared.slo.monitor`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.lazy import lazy_exports

if TYPE_CHECKING:
    from shared.slo.burn_rate import FiredRule, burn_rate, fired_rules
    from shared.slo.config import (
        BackendSpec,
        BurnRateRule,
        MonitorConfig,
        Slo,
        load_config,
        parse_config,
    )
    from shared.slo.errors import (
        AlertDeliveryError,
        AlertUnreachable,
        ConfigInvalid,
        RecordError,
        SloError,
        SourceError,
    )
    from shared.slo.evaluation import Verdict, evaluate
    from shared.slo.measurement import Measurement
    from shared.slo.window import Window, aligned_end

_EXPORTS = {
    "FiredRule": "burn_rate",
    "burn_rate": "burn_rate",
    "fired_rules": "burn_rate",
    "BackendSpec": "config",
    "BurnRateRule": "config",
    "MonitorConfig": "config",
    "Slo": "config",
    "load_config": "config",
    "parse_config": "config",
    "AlertDeliveryError": "errors",
    "AlertUnreachable": "errors",
    "ConfigInvalid": "errors",
    "RecordError": "errors",
    "SloError": "errors",
    "SourceError": "errors",
    "Verdict": "evaluation",
    "evaluate": "evaluation",
    "Measurement": "measurement",
    "Window": "window",
    "aligned_end": "window",
}

__all__ = [
    "AlertDeliveryError",
    "AlertUnreachable",
    "BackendSpec",
    "BurnRateRule",
    "ConfigInvalid",
    "FiredRule",
    "Measurement",
    "MonitorConfig",
    "RecordError",
    "Slo",
    "SloError",
    "SourceError",
    "Verdict",
    "Window",
    "aligned_end",
    "burn_rate",
    "evaluate",
    "fired_rules",
    "load_config",
    "parse_config",
]


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
