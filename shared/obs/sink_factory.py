"""The request store chosen by name: ``REQUEST_SINK=package.module:callable``.

``shared.obs`` knows only its sink interface; which store receives request records is the
deployment's choice, named in the environment (as slo-generator picks its exporters by name). The
local stack sets ``REQUEST_SINK=shared.slo.local_store:batch_writer_from_env``. The callable is
imported and called once per instance, with no arguments, on the first observed request; it
returns a :class:`shared.obs.batching.BatchWriter` (or None: nothing to record), which is then fed
through a :class:`shared.obs.batching.BatchingSink`, off the request thread.

A malformed name is a bad setting (``SettingsError`` on the first request). A name that does not
import, or a factory that raises, is logged as a warning and the instance serves without a store:
request records are optional, serving is not.
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, cast

from shared.obs.batching import BatchingSink, BatchWriter
from shared.obs.requests import add_request_sink, remove_request_sink

SINK_ENV: Final = "REQUEST_SINK"
SINK_ALLOWED: Final = "package.module:callable (e.g. shared.slo.local_store:batch_writer_from_env)"

_NAME = re.compile(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):([A-Za-z_]\w*)")

logger = logging.getLogger("shared.obs.sink_factory")


@dataclass(frozen=True, slots=True)
class FactoryName:
    """Where a sink factory lives: ``module`` (dotted) and the ``attribute`` to call."""

    module: str
    attribute: str

    def __str__(self) -> str:
        return f"{self.module}:{self.attribute}"


def parse_factory_name(text: str) -> FactoryName:
    """``"pkg.mod:fn"`` as a :class:`FactoryName`; ValueError for anything else."""
    match = _NAME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not a module:callable name: {text!r}")
    return FactoryName(match.group(1), match.group(2))


def load_factory(name: FactoryName) -> object:
    """Import ``name`` and call it with no arguments; its answer. May raise."""
    factory = getattr(importlib.import_module(name.module), name.attribute)
    if not callable(factory):
        raise TypeError(f"{name} is not callable")
    return cast(Callable[[], object], factory)()


def load_writer(name: FactoryName) -> BatchWriter | None:
    """Import ``name`` and call it; its answer (a batch writer, or None). May raise."""
    return cast(BatchWriter | None, load_factory(name))


_lock = threading.Lock()
_installed: BatchingSink | None = None


def install_configured_sink(name: FactoryName | None) -> BatchingSink | None:
    """Install the store ``name`` makes as a batching request sink; the sink, or None.

    Called once per instance (by ``@observed``'s set-up); a second call leaves the first sink.
    """
    global _installed
    with _lock:
        if _installed is not None or name is None:
            return _installed
        try:
            writer = load_writer(name)
        except Exception:  # request records are optional: serving must go on without them
            logger.warning(
                "%s=%s could not be loaded; requests will not be recorded",
                SINK_ENV,
                name,
                exc_info=True,
            )
            return None
        if writer is None:
            return None
        _installed = BatchingSink(writer, name=f"request-sink {name}")
        add_request_sink(_installed)
        return _installed


def configured_sink() -> BatchingSink | None:
    """The sink :func:`install_configured_sink` installed, if any."""
    return _installed


def uninstall_configured_sink(timeout_s: float = 5.0) -> None:
    """Remove the configured sink after writing what it holds (for tests and shutdown)."""
    global _installed
    with _lock:
        sink, _installed = _installed, None
    if sink is not None:
        remove_request_sink(sink)
        sink.close(timeout_s)
