"""The pure gate, table-driven, plus a property: it never advances past a breached threshold."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.canary import (
    CanaryConfigError,
    Observation,
    Thresholds,
    check_stages,
    evaluate,
    next_stage,
)
from shared.obs.percentiles import LatencyWindow, summarize

T = Thresholds(
    max_p95_ms=800, max_error_rate=0.01, min_requests=100, max_p95_ratio=1.2,
    max_error_rate_increase=0.005,
)  # fmt: skip
ABSOLUTE = Thresholds(max_p95_ms=800, max_error_rate=0.01, min_requests=100)
BASE = Observation(1000, 2, 500.0)  # 0.2% errors, p95 500 ms


def obs(requests: int = 200, errors: int = 0, p95: float | None = 400.0) -> Observation:
    return Observation(requests, errors, p95)


@pytest.mark.parametrize(
    ("case", "current", "canary", "baseline", "thresholds", "verdict", "next_percent", "breaches"),
    [
        ("healthy at 0 starts", 0, obs(), BASE, T, "advance", 10, ()),
        ("healthy at 10", 10, obs(), BASE, T, "advance", 50, ()),
        ("healthy at 50", 50, obs(), BASE, T, "advance", 100, ()),
        ("complete at 100", 100, obs(), BASE, T, "hold", 100, ()),
        ("p95 at the limit", 10, obs(p95=600.0), BASE, T, "advance", 50, ()),
        ("p95 just over absolute", 10, obs(p95=800.5), None, ABSOLUTE, "rollback", 0, ("p95_ms",)),
        ("p95 exactly absolute", 10, obs(p95=800.0), None, ABSOLUTE, "advance", 50, ()),
        ("errors at the limit", 10, obs(100, 1), None, ABSOLUTE, "advance", 50, ()),
        ("errors over", 10, obs(100, 2), None, ABSOLUTE, "rollback", 0, ("error_rate",)),
        ("too few requests", 10, obs(99, 1), None, ABSOLUTE, "hold", 10, ()),
        ("too few but certain", 10, obs(50, 2), None, ABSOLUTE, "rollback", 0, ("error_rate",)),
        ("too few, slow", 50, obs(20, 0, 5000.0), None, ABSOLUTE, "hold", 50, ()),
        ("no latency", 10, obs(p95=None), None, ABSOLUTE, "hold", 10, ()),
        ("ratio at the limit", 10, obs(p95=600.0), BASE, T, "advance", 50, ()),
        ("ratio over", 10, obs(p95=600.5), BASE, T, "rollback", 0, ("p95_ratio",)),
        ("error increase over", 10, obs(1000, 8), BASE, T, "rollback", 0, ("error_rate_increase",)),
        ("error increase at limit", 10, obs(1000, 7), BASE, T, "advance", 50, ()),
        ("no baseline for ratio", 10, obs(), None, T, "hold", 10, ()),
        ("thin baseline", 10, obs(), Observation(10, 0, 100.0), T, "hold", 10, ()),
        (
            "several breaches", 50, obs(200, 10, 900.0), BASE, T, "rollback", 0,
            ("error_rate", "p95_ms", "p95_ratio", "error_rate_increase"),
        ),
        ("breach at 100 still rolls back", 100, obs(200, 5), BASE, T, "rollback", 0,
         ("error_rate", "error_rate_increase")),
    ],
)  # fmt: skip
def test_decisions(
    case: str,
    current: int,
    canary: Observation,
    baseline: Observation | None,
    thresholds: Thresholds,
    verdict: str,
    next_percent: int,
    breaches: tuple[str, ...],
) -> None:
    decision = evaluate(current, canary, thresholds, baseline=baseline)
    assert (decision.verdict, decision.next_percent, decision.breaches) == (
        verdict,
        next_percent,
        breaches,
    ), decision.reasons
    assert decision.current_percent == current
    assert decision.reasons


def test_reasons_read_as_sentences() -> None:
    assert evaluate(10, obs(p95=600.5), T, baseline=BASE).reasons == (
        "p95 600.5 ms > baseline 500.0 ms x 1.2",
    )
    assert evaluate(10, obs(99, 1), ABSOLUTE).reasons == (
        "not enough canary data: 99 < 100 requests",
    )
    assert evaluate(10, obs(50, 2), ABSOLUTE).reasons == (
        "2 errors already exceed 1.00% of the 100 requests needed",
    )
    assert evaluate(10, obs(), T, baseline=BASE).reasons == (
        "healthy at 10%: 200 requests, error rate 0.00%, p95 400.0 ms (baseline p95 500.0 ms)",
    )


def test_custom_stages() -> None:
    assert evaluate(0, obs(), ABSOLUTE, stages=(1, 5, 25, 100)).next_percent == 1
    assert evaluate(25, obs(), ABSOLUTE, stages=(1, 5, 25, 100)).next_percent == 100
    assert next_stage(30, (10, 50, 100)) == 50
    assert next_stage(100, (10, 50, 100)) is None


@pytest.mark.parametrize("stages", [(), (10, 5, 100), (10, 50), (0, 100), (10, 10, 100)])
def test_bad_stages(stages: tuple[int, ...]) -> None:
    with pytest.raises(CanaryConfigError, match="stages must be strictly increasing"):
        check_stages(stages)


BAD_THRESHOLDS = [
    ({"max_p95_ms": 0, "max_error_rate": 0.01}, "max_p95_ms must be a number > 0, got 0"),
    (
        {"max_p95_ms": 800, "max_error_rate": 1.5},
        "max_error_rate must be a fraction in [0, 1], got 1.5",
    ),
    (
        {"max_p95_ms": 800, "max_error_rate": 0.01, "min_requests": 0},
        "min_requests must be an integer >= 1, got 0",
    ),
    (
        {"max_p95_ms": 800, "max_error_rate": 0.01, "max_p95_ratio": 0.9},
        "max_p95_ratio must be a number >= 1 (1.2 = 20% slower), got 0.9",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), BAD_THRESHOLDS)
def test_bad_thresholds(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(CanaryConfigError) as caught:
        Thresholds(**kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == message


def test_bad_observation() -> None:
    with pytest.raises(CanaryConfigError, match="0 <= errors <= requests"):
        Observation(5, 6, 1.0)


def test_observation_from_window_and_summary() -> None:
    window = LatencyWindow(max_count=1000)
    for i in range(100):
        window.record(float(i), ok=i % 10 != 0)
    observed = Observation.from_window(window)
    assert (observed.requests, observed.errors) == (100, 10)
    assert observed.p95_ms == pytest.approx(94.05)
    assert Observation.from_window(LatencyWindow(max_count=5)) == Observation(0, 0, None)
    assert Observation.from_summary(summarize([1.0, 2.0, 3.0]), errors=1) == Observation(
        3, 1, summarize([1.0, 2.0, 3.0]).p95
    )


thresholds = st.builds(
    Thresholds,
    max_p95_ms=st.floats(100, 3000),
    max_error_rate=st.floats(0, 0.5),
    min_requests=st.integers(1, 500),
    max_p95_ratio=st.none() | st.floats(1, 3) | st.floats(1, 1.5),
    max_error_rate_increase=st.none() | st.floats(0, 0.2) | st.floats(0, 0.02),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Observation, Observation | None]:
    """A baseline and a canary near it, so single-threshold breaches (the subtle ones) occur."""
    base_requests = draw(st.integers(0, 3000))
    base_errors = int(base_requests * draw(st.floats(0, 0.02)))
    base_p95 = draw(st.floats(1, 1500))
    baseline = Observation(base_requests, base_errors, base_p95)
    requests = draw(st.integers(0, 3000))
    errors = int(requests * draw(st.floats(0, 0.05) | st.floats(0, 1)))
    p95 = None if draw(st.integers(0, 9)) == 0 else base_p95 * draw(st.floats(0.5, 3.0))
    return Observation(requests, errors, p95), None if draw(st.integers(0, 4)) == 0 else baseline


def _breached(c: Observation, b: Observation | None, t: Thresholds) -> bool:
    """An independent statement of "a threshold is breached" on enough data."""
    if c.requests < t.min_requests:
        return False
    rate = c.errors / c.requests
    if rate > t.max_error_rate or (c.p95_ms is not None and c.p95_ms > t.max_p95_ms):
        return True
    if b is None or b.requests < t.min_requests:
        return False
    if (
        t.max_p95_ratio is not None
        and c.p95_ms is not None
        and b.p95_ms is not None
        and c.p95_ms > b.p95_ms * t.max_p95_ratio
    ):
        return True
    base_rate = b.errors / b.requests
    return t.max_error_rate_increase is not None and rate > base_rate + t.max_error_rate_increase


@settings(max_examples=400, deadline=None)
@given(current=st.sampled_from([0, 10, 50, 100]), scenario=scenarios(), limits=thresholds)
def test_never_advances_when_a_threshold_is_breached(
    current: int, scenario: tuple[Observation, Observation | None], limits: Thresholds
) -> None:
    canary, baseline = scenario
    decision = evaluate(current, canary, limits, baseline=baseline)
    if _breached(canary, baseline, limits):
        assert decision.verdict == "rollback"
        assert decision.next_percent == 0
    if decision.verdict == "advance":
        assert canary.requests >= limits.min_requests
        assert decision.next_percent > current
    if decision.verdict == "hold":
        assert decision.next_percent == current
