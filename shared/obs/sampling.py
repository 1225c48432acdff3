"""Which requests get a request log line: every failure and slow one, a sample of the rest.

Cloud Run / Cloud Functions gen2 already write their own access log for every request, and every
request still reaches the request sinks (:mod:`shared.obs.requests`, the local SLO store). The
request log line written by ``@observed`` is for debugging, so collection is concentrated where it
is useful:

- a response that is not 2xx (injected or not) is always logged;
- a slow request (latency >= ``slow_ms``) is always logged;
- while the function's recent error rate (over the last ``window_requests`` requests that arrived
  within the last ``window_s`` seconds) is at least ``error_burst``, every request is logged, until
  the rate falls back below it;
- otherwise a success is logged with probability ``sample_rate`` (1.0: every request, 0: none).

An *error*, for the rate, is a status >= 400 (injected failures included).

Environment (read once per instance, on the first request, through :mod:`shared.settings`; a bad
value fails that request with a ``SettingsError`` naming the variable and its range):

``REQUEST_LOG_SAMPLE_RATE``
    Fraction of ordinary successes logged, 0..1 (default 0.01).
``REQUEST_LOG_SLOW_MS``
    Latency in ms from which a request is always logged, 0..3600000 (default 1000).
``REQUEST_LOG_ERROR_BURST``
    Recent error rate, 0..1, from which every request is logged (default 0.01).
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from shared.obs.errors import ObsError
from shared.settings import Env

SAMPLE_RATE_ENV: Final = "REQUEST_LOG_SAMPLE_RATE"
SLOW_MS_ENV: Final = "REQUEST_LOG_SLOW_MS"
ERROR_BURST_ENV: Final = "REQUEST_LOG_ERROR_BURST"

# One success in a hundred: the platform's own request log already has every request, so these
# lines only add the trace id and the injected flag to a sample. A line costs about 200 µs of CPU
# under load (most of it the flushed write), so at 0.1 the sample alone took ~4% of a small
# handler's throughput; at 0.01 it is under 0.5%. REQUEST_LOG_SAMPLE_RATE=1 logs every request.
DEFAULT_SAMPLE_RATE: Final = 0.01
DEFAULT_SLOW_MS: Final = 1000.0
DEFAULT_ERROR_BURST: Final = 0.01
DEFAULT_WINDOW_REQUESTS: Final = 200
DEFAULT_WINDOW_S: Final = 60.0
MAX_SLOW_MS: Final = 3_600_000.0


class SamplingConfigError(ObsError):
    """A sampling setting out of range (the message names the setting and the valid range)."""


def _check_fraction(name: str, value: float) -> None:
    if not (0.0 <= value <= 1.0):
        raise SamplingConfigError(f"{name} must be a number from 0 to 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class SamplingConfig:
    """The sampling settings; see the module docstring. Validated on construction."""

    sample_rate: float = DEFAULT_SAMPLE_RATE
    slow_ms: float = DEFAULT_SLOW_MS
    error_burst: float = DEFAULT_ERROR_BURST
    window_requests: int = DEFAULT_WINDOW_REQUESTS
    window_s: float = DEFAULT_WINDOW_S

    def __post_init__(self) -> None:
        _check_fraction("sample_rate", self.sample_rate)
        _check_fraction("error_burst", self.error_burst)
        if not (self.slow_ms >= 0.0 and math.isfinite(self.slow_ms)):
            raise SamplingConfigError(
                f"slow_ms must be a finite number of ms >= 0, got {self.slow_ms!r}"
            )
        if type(self.window_requests) is not int or self.window_requests < 1:
            raise SamplingConfigError(
                f"window_requests must be an integer >= 1, got {self.window_requests!r}"
            )
        if not (self.window_s > 0.0 and math.isfinite(self.window_s)):
            raise SamplingConfigError(
                f"window_s must be a finite number of seconds > 0, got {self.window_s!r}"
            )


def sampling_from_env(env: Env) -> SamplingConfig:
    """The settings from ``REQUEST_LOG_*`` (see the module docstring); a bad value is recorded in
    ``env`` (its ``check()`` raises) and the default used meanwhile."""
    return SamplingConfig(
        sample_rate=env.number(SAMPLE_RATE_ENV, DEFAULT_SAMPLE_RATE, low=0.0, high=1.0),
        slow_ms=env.number(SLOW_MS_ENV, DEFAULT_SLOW_MS, low=0.0, high=MAX_SLOW_MS),
        error_burst=env.number(ERROR_BURST_ENV, DEFAULT_ERROR_BURST, low=0.0, high=1.0),
    )


def is_logged_status(status: int) -> bool:
    """Whether a response status is always logged: anything but 2xx."""
    return not 200 <= status < 300


class RequestLogSampler:
    """Decides, request by request, whether to write the request log line. Thread-safe.

    ``rng`` returns floats in [0, 1) (``random.random``), ``clock`` monotonic seconds; both are
    injectable for tests. Every call of :meth:`should_log` records its request in the error window,
    whatever the answer.
    """

    __slots__ = ("_clock", "_errors", "_lock", "_recent", "_rng")

    def __init__(
        self,
        *,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rng = rng
        self._clock = clock
        self._lock = threading.Lock()
        # (arrival time, was an error) of the most recent requests, oldest first.
        self._recent: deque[tuple[float, bool]] = deque()
        self._errors = 0

    def error_rate(self, config: SamplingConfig) -> float:
        """The error rate over the current window (0 with no requests in it)."""
        with self._lock:
            self._expire(self._clock(), config)
            return self._errors / len(self._recent) if self._recent else 0.0

    def _expire(self, now: float, config: SamplingConfig) -> None:
        recent = self._recent
        horizon = now - config.window_s
        while recent and (len(recent) > config.window_requests or recent[0][0] < horizon):
            if recent.popleft()[1]:
                self._errors -= 1

    def should_log(self, status: int, latency_ms: float, config: SamplingConfig) -> bool:
        """Record one finished request and say whether to log it."""
        error = status >= 400
        with self._lock:
            now = self._clock()
            self._recent.append((now, error))
            if error:
                self._errors += 1
            self._expire(now, config)
            burst = self._errors >= config.error_burst * len(self._recent)
        if burst or is_logged_status(status) or latency_ms >= config.slow_ms:
            return True
        rate = config.sample_rate
        return rate >= 1.0 or (rate > 0.0 and self._rng() < rate)
