"""Cloud Scheduler retry settings of the deploy's jobs, and why they fit their slots."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from scripts.catalog import SLO_MONITOR


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A Cloud Scheduler job's retry settings (seconds).

    Scheduler retries a failed attempt "until both limits are reached" (``attempts`` retries and
    ``duration_s`` since the first attempt), waiting ``min_backoff_s`` first, doubling the wait
    ``max_doublings`` times, then growing it linearly, never beyond ``max_backoff_s``.
    """

    attempts: int
    duration_s: int
    min_backoff_s: int
    max_backoff_s: int
    max_doublings: int
    deadline_s: int

    def flags(self) -> list[str]:
        first = [f"--attempt-deadline={self.deadline_s}s", f"--max-retry-attempts={self.attempts}"]
        if self.attempts == 0:
            return first  # no retry: the backoff settings would mean nothing
        return [
            *first,
            f"--max-retry-duration={self.duration_s}s",
            f"--min-backoff={self.min_backoff_s}s",
            f"--max-backoff={self.max_backoff_s}s",
            f"--max-doublings={self.max_doublings}",
        ]


#: The monitor answers 503 when a run's Firestore write or an SLI read failed, so that Scheduler
#: runs it again within its 5-minute slot, and no later: a retry running into the next run would
#: queue behind it (one instance, one request) and alert from stale data. Worst case, every
#: attempt running to its deadline (135 s), the one retry starts at 150 s and ends by 285 s;
#: quick failures are retried at 15, 45 and 75 s. tests/deploy/test_deploy.py computes the worst
#: case from the printed flags. (3 attempts within 240 s allowed ~6 retries, the last one
#: overlapping the next run.)
MONITOR_RETRY: Final = RetryPolicy(
    attempts=1,
    duration_s=60,
    min_backoff_s=15,
    max_backoff_s=30,
    max_doublings=1,
    deadline_s=SLO_MONITOR.timeout_s + 15,
)
#: A missed prewarm ping is not worth a retry: the next one comes in a few minutes. The deadline
#: covers a cold start.
PREWARM_RETRY: Final = RetryPolicy(
    attempts=0, duration_s=0, min_backoff_s=5, max_backoff_s=5, max_doublings=0, deadline_s=30
)
