"""While the storage fails: the circuit acts as its declared ``fallback_state`` for a while."""

from __future__ import annotations

import sys

from shared.resilience.circuit.config import CircuitConfig
from shared.resilience.circuit.states import Refused, Ticket
from shared.resilience.circuit.storage import CLOSED, HALF_OPEN, OPEN
from shared.resilience.clock import Clock

__all__ = ["FALLBACK_PROBE", "UNTRACKED", "Outage"]

#: A call admitted by the fallback state "closed": its outcome is not recorded anywhere.
UNTRACKED = Ticket(None)
#: A probe admitted by the fallback state "half-open": it only holds a fallback probe slot.
FALLBACK_PROBE = Ticket(None, probe=True)


class Outage:
    """The storage's failure period: it lasts ``storage_retry_interval`` seconds (monotonic),
    then the next use tries the storage again."""

    __slots__ = ("_clock", "_config", "probes", "until")

    def __init__(self, config: CircuitConfig, clock: Clock) -> None:
        self._config = config
        self._clock = clock
        self.until = 0.0  # monotonic end of the current outage; 0.0 when there is none
        self.probes = 0  # fallback half-open probes running

    def begin(self) -> None:
        """The storage just failed: act as the fallback state for the retry interval."""
        end = self._clock.monotonic() + self._config.storage_retry_interval
        self.until = max(end, sys.float_info.min)  # never 0.0, which means "no outage"
        self.probes = 0

    def end(self) -> None:
        """Forget the outage: the next use tries the storage."""
        self.until = 0.0

    def active(self) -> bool:
        """True during an outage; once its interval is over, the outage ends (storage retried)."""
        if not self.until:
            return False
        if self._clock.monotonic() < self.until:
            return True
        self.until = 0.0
        return False

    def admit(self) -> Ticket:
        """Admit as the fallback state would; raises :class:`Refused`."""
        fallback = self._config.fallback_state
        if fallback == CLOSED:
            return UNTRACKED
        if fallback == OPEN:
            raise Refused(self.retry_after())
        if fallback == HALF_OPEN and self.probes < self._config.half_open_max_calls:
            self.probes += 1
            return FALLBACK_PROBE
        raise Refused(self._config.busy_retry_after)

    def release(self, ticket: Ticket) -> None:
        """Free the fallback probe slot ``ticket`` held, if any."""
        if ticket.probe and self.probes:
            self.probes -= 1

    def retry_after(self) -> float:
        """Seconds of refusals left (fallback "open"); 0.0 for the other fallback states."""
        if self._config.fallback_state != OPEN:
            return 0.0
        return max(0.0, self.until - self._clock.monotonic())
