"""SLI sources, one module per provider, chosen by name from the SLO file.

Each provider module exposes ``OPTIONS`` (the option names its ``backends:`` entry accepts),
``parse_query(method, raw)`` (validates an SLO's ``service_level_indicator`` block into a typed
query) and ``open_backend(spec, settings)``. A backend object has one method per SLI method,
named as the YAML ``method:`` key, each taking ``(slo, window)`` and returning a Measurement.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Protocol

from shared.slo.backends.cloud_monitoring import DistributionQuery, RatioQuery
from shared.slo.backends.local import LocalMetricQuery, LocalQuery

if TYPE_CHECKING:
    from shared.slo.config import BackendSpec, Slo
    from shared.slo.measurement import Measurement
    from shared.slo.settings import Settings
    from shared.slo.window import Window

__all__ = ["BACKEND_TYPES", "Backend", "SliQuery", "backend_module", "open_backend"]

BACKEND_TYPES = ("cloud_monitoring", "local")

SliQuery = RatioQuery | DistributionQuery | LocalQuery | LocalMetricQuery


class Backend(Protocol):
    """An SLI source. Methods raise :class:`~shared.slo.errors.SourceError` on failure."""

    def good_bad_ratio(self, slo: Slo, window: Window) -> Measurement: ...

    def latency_percentile(self, slo: Slo, window: Window) -> Measurement: ...


def backend_module(type_: str) -> ModuleType:
    """The provider module for ``type_`` (one of :data:`BACKEND_TYPES`)."""
    if type_ not in BACKEND_TYPES:
        raise KeyError(f"unknown backend type {type_!r}; known: {', '.join(BACKEND_TYPES)}")
    return importlib.import_module(f"shared.slo.backends.{type_}")


def open_backend(spec: BackendSpec, settings: Settings) -> Backend:
    """Build the backend ``spec`` names; clients are created here, never at import."""
    backend: Backend = backend_module(spec.type).open_backend(spec, settings)
    return backend
