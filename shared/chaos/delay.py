"""Random delay and error injection: the pure core of ``chaos_delay``."""

from __future__ import annotations

import random
from typing import NamedTuple, Protocol

from shared.chaos.params import RETRY_AFTER_STATUSES, DelayParams
from shared.resilience.clock import Clock


class RandomSource(Protocol):
    """The draws the injector needs; :class:`random.Random` satisfies it."""

    def random(self) -> float:
        """A float in [0, 1)."""
        ...

    def uniform(self, a: float, b: float) -> float:
        """A float between ``a`` and ``b``."""
        ...


class DelayOutcome(NamedTuple):
    """What one ``chaos_delay`` call did. Delays in milliseconds, ``retry_after_s`` in seconds.

    ``delay_ms`` is the wait actually measured around the sleep; ``planned_delay_ms`` is the draw.
    Immutable like the frozen dataclasses elsewhere, but a named tuple: one is made per request,
    and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) costs ~5x more.
    """

    planned_delay_ms: float
    delay_ms: float
    injected_status: int | None
    retry_after_s: int | None

    @property
    def ok(self) -> bool:
        return self.injected_status is None

    @property
    def status(self) -> int:
        return 200 if self.injected_status is None else self.injected_status


def random_source(seed: int | None) -> RandomSource:
    """A generator seeded with ``seed`` (reproducible), or a fresh unseeded one."""
    return random.Random(seed)


def draw(params: DelayParams, rng: RandomSource) -> tuple[float, bool]:
    """The planned delay in ms (uniform in [d, 2d]) and whether to inject, in that draw order.

    The order is part of the contract: the same ``seed`` gives the same delay and the same outcome.
    """
    delay_ms = rng.uniform(params.d_ms, 2 * params.d_ms)
    # random() < p: p=0 never injects, p=1 always does (random() is < 1).
    return delay_ms, rng.random() < params.p


def inject_delay(params: DelayParams, *, rng: RandomSource, clock: Clock) -> DelayOutcome:
    """Wait a random ``d..2d`` ms on ``clock``, then decide, with probability ``p``, to fail."""
    planned_ms, fail = draw(params, rng)
    if planned_ms > 0.0:
        started = clock.monotonic()
        clock.sleep(planned_ms / 1000.0)
        waited_ms = (clock.monotonic() - started) * 1000.0
    else:
        # d=0: time.sleep(0) would still release the GIL and queue behind every other request
        # thread to take it back, a wait of up to the interpreter's switch interval under load.
        waited_ms = 0.0
    if not fail:
        return DelayOutcome(planned_ms, waited_ms, None, None)
    retry_after = params.retry_after_s if params.status in RETRY_AFTER_STATUSES else None
    return DelayOutcome(planned_ms, waited_ms, params.status, retry_after)
