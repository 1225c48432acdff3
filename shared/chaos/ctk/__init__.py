"""The project's Chaos Toolkit extension: probes, actions, tolerances and controls.

Playbooks (``playbooks/*.yaml``) name these by module and function, as Chaos Toolkit expects:

- :mod:`.load`: ``run_load`` (probe), ``start_load`` / ``stop_load`` (action / rollback): an
  open-model load of ``POST /graph_ask`` sent by Locust, reported with HDR percentiles;
- :mod:`.service`: ``cold_start`` (probe): a fresh instance of a running service, timed;
- :mod:`.criteria`: ``meets`` (a ``type: probe`` tolerance): several thresholds on one report;
- :mod:`.controls`: the safeguard on failed actions and the table of measured numbers.

Faults themselves are started and stopped through ``chaos_proxy``'s ``_experiments`` API with
Chaos Toolkit's own ``http`` provider; nothing here re-implements the runner.
"""

from __future__ import annotations

from shared.chaos.ctk.criteria import meets
from shared.chaos.ctk.errors import CtkError, InvalidArgument, LoadFailed, ServiceFailed
from shared.chaos.ctk.load import run_load, start_load, stop_load
from shared.chaos.ctk.service import cold_start

__all__ = [
    "CtkError",
    "InvalidArgument",
    "LoadFailed",
    "ServiceFailed",
    "cold_start",
    "meets",
    "run_load",
    "start_load",
    "stop_load",
]
