"""Which cohort a user is in: a stable hash of (rollout, user) against the candidate's percent.

The same user always lands in the same cohort of a rollout, whatever instance serves them, and
raising the percent only moves users from stable to candidate (a user in the candidate cohort at
10% stays there at 50%). About ``percent`` percent of users are candidates. Requests without a
user id are served by stable: they cannot be kept in one cohort, and a rollout must not flip a
user's answers between versions.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal, TypeAlias

Cohort: TypeAlias = Literal["stable", "candidate"]
COHORTS: Final[tuple[Cohort, ...]] = ("stable", "candidate")
#: Resolution of the split: 10 000 buckets, so percents are exact to 0.01.
BUCKETS: Final = 10_000


def bucket_of(rollout: str, user: str) -> int:
    """The user's bucket in ``[0, BUCKETS)`` for this rollout (independent across rollouts)."""
    digest = hashlib.sha256(f"{rollout}\0{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def cohort_of(rollout: str, user: str | None, percent: float) -> Cohort:
    """``candidate`` for the first ``percent`` percent of buckets, else ``stable``."""
    if not user or percent <= 0:
        return "stable"
    return "candidate" if bucket_of(rollout, user) < percent * BUCKETS / 100 else "stable"
