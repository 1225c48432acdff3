"""Cohorts: the same user always in the same cohort, the candidate's share near the percent."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.canary import bucket_of, cohort_of

USERS = [f"user-{i}" for i in range(20_000)]


def test_share_of_candidates_is_near_the_percent() -> None:
    for percent in (1, 10, 50, 90):
        share = sum(cohort_of("ask-model", u, percent) == "candidate" for u in USERS) / len(USERS)
        assert abs(share - percent / 100) < 0.015, (percent, share)


def test_no_user_no_percent_and_all() -> None:
    assert cohort_of("ask-model", None, 50) == "stable"
    assert cohort_of("ask-model", "", 50) == "stable"
    assert {cohort_of("ask-model", u, 0) for u in USERS[:500]} == {"stable"}
    assert {cohort_of("ask-model", u, 100) for u in USERS[:500]} == {"candidate"}


def test_rollouts_split_users_independently() -> None:
    a = {u for u in USERS if cohort_of("ask-model", u, 10) == "candidate"}
    b = {u for u in USERS if cohort_of("ranking-policy", u, 10) == "candidate"}
    assert 0.05 < len(a & b) / len(a) < 0.15  # about 10% of a's candidates, not all of them


@settings(max_examples=200, deadline=None)
@given(user=st.text(min_size=1, max_size=40), low=st.integers(0, 100), high=st.integers(0, 100))
def test_stable_and_monotonic(user: str, low: int, high: int) -> None:
    """Same answer every time; raising the percent never moves a candidate back to stable."""
    low, high = sorted((low, high))
    assert bucket_of("ask-model", user) == bucket_of("ask-model", user)
    if cohort_of("ask-model", user, low) == "candidate":
        assert cohort_of("ask-model", user, high) == "candidate"
