"""Plan-priority admission at 1.5x its capacity, against plain FIFO admission in the same run.

Real threads on the real clock: a 600 rpm controller (10 requests/s) is offered 15 requests/s
(Poisson arrivals, 20% premium) for 20 s. The same arrival sequence is fed at the same instants
to two controllers of the same capacity, burst and queue bound:

* priority: :class:`PriorityAdmission` (premium first, 20% of the bucket reserved for premium);
* FIFO: the same class with no reserve and every request in its one (free) queue, i.e. first come
  first served with no notion of plan — the baseline.

Each request waits at most its deadline (premium 3 s, free 8 s). Targets, exit 1 when missed:
premium p95 wait < 1 s under priority admission, no admitted request waiting past its deadline
(by the controller's clock, and as the caller observed it, within 50 ms of return latency), and
priority admission still admitting at >= 90% of capacity and turning away <= 1% of premium
requests (no winning by turning work away).

Run: ``python -m bench.bench_admission [--seconds 20] [--rpm 600] [--seed 66]``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

from shared.resilience.admission import PriorityAdmission
from shared.resilience.errors import AdmissionRejected

Plan = Literal["premium", "free"]
DEADLINES: dict[Plan, float] = {"premium": 3.0, "free": 8.0}
OVERLOAD = 1.5
PREMIUM_SHARE = 0.2
QUEUE = 40
RETURN_SLACK = 0.05  # seconds a caller may take to get control back after admission
P95_TARGET = 1.0


@dataclass(frozen=True, slots=True)
class Outcome:
    plan: Plan
    deadline: float
    admitted: bool
    waited: float  # by the controller's clock (ticket.waited), or time to rejection
    observed: float  # by the caller: call to return
    reason: str


def arrivals(rate: float, seconds: float, seed: int) -> list[tuple[float, Plan]]:
    """Poisson arrival offsets (seconds) with plans drawn at PREMIUM_SHARE."""
    rng = random.Random(seed)
    out: list[tuple[float, Plan]] = []
    t = rng.expovariate(rate)
    while t < seconds:
        out.append((t, "premium" if rng.random() < PREMIUM_SHARE else "free"))
        t += rng.expovariate(rate)
    return out


def request(
    adm: PriorityAdmission, plan: Plan, as_plan: Plan, sink: list[Outcome], lock: threading.Lock
) -> None:
    deadline = DEADLINES[plan]
    started = time.monotonic()
    try:
        ticket = adm.admit(as_plan, deadline)
        outcome = Outcome(plan, deadline, True, ticket.waited, time.monotonic() - started, "")
    except AdmissionRejected as exc:
        elapsed = time.monotonic() - started
        outcome = Outcome(plan, deadline, False, elapsed, elapsed, exc.reason)
    with lock:
        sink.append(outcome)


def run(rpm: float, seconds: float, seed: int) -> tuple[dict[str, list[Outcome]], float]:
    """Each controller's outcomes, and the wall seconds from first arrival to last decision."""
    priority = PriorityAdmission(rpm, premium_reserve=0.2, free_queue_size=QUEUE, name="priority")
    fifo = PriorityAdmission(rpm, premium_reserve=0.0, free_queue_size=QUEUE, name="fifo")
    results: dict[str, list[Outcome]] = {"priority": [], "fifo": []}
    lock = threading.Lock()
    threads: list[threading.Thread] = []
    schedule = arrivals(OVERLOAD * rpm / 60.0, seconds, seed)
    t0 = time.monotonic()
    for offset, plan in schedule:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        for name, adm, as_plan in (
            ("priority", priority, plan),
            ("fifo", fifo, "free"),  # FIFO: one queue, no plan
        ):
            t = threading.Thread(
                target=request, args=(adm, plan, as_plan, results[name], lock), daemon=True
            )
            t.start()
            threads.append(t)
    for t in threads:
        t.join(max(DEADLINES.values()) + 5)
    return results, time.monotonic() - t0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Summary:
    premium_p50: float
    premium_p95: float
    premium_max: float
    free_p50: float
    free_p95: float
    admitted: dict[str, int]
    rejected: dict[str, int]
    reasons: dict[str, int]
    violations: int
    late_returns: int
    admitted_per_s: float


def summarize(outcomes: list[Outcome], seconds: float) -> Summary:
    waits: dict[str, list[float]] = {"premium": [], "free": []}
    admitted = {"premium": 0, "free": 0}
    rejected = {"premium": 0, "free": 0}
    reasons: dict[str, int] = {}
    violations = late = 0
    for o in outcomes:
        if o.admitted:
            admitted[o.plan] += 1
            waits[o.plan].append(o.waited)
            violations += o.waited > o.deadline
            late += o.observed > o.deadline + RETURN_SLACK
        else:
            rejected[o.plan] += 1
            reasons[o.reason] = reasons.get(o.reason, 0) + 1
    return Summary(
        premium_p50=percentile(waits["premium"], 50),
        premium_p95=percentile(waits["premium"], 95),
        premium_max=max(waits["premium"], default=math.nan),
        free_p50=percentile(waits["free"], 50),
        free_p95=percentile(waits["free"], 95),
        admitted=admitted,
        rejected=rejected,
        reasons=reasons,
        violations=violations,
        late_returns=late,
        admitted_per_s=sum(admitted.values()) / seconds,
    )


def report(name: str, s: Summary) -> None:
    print(
        f"{name:>9}: premium wait p50 {s.premium_p50 * 1e3:7.2f} ms  p95 "
        f"{s.premium_p95 * 1e3:7.2f} ms  max {s.premium_max * 1e3:7.2f} ms | free wait p50 "
        f"{s.free_p50 * 1e3:7.1f} ms  p95 {s.free_p95 * 1e3:7.1f} ms"
    )
    print(
        f"{'':>9}  premium admitted {s.admitted['premium']:4d} rejected "
        f"{s.rejected['premium']:4d} | free admitted {s.admitted['free']:4d} rejected "
        f"{s.rejected['free']:4d} | rejections by reason {s.reasons} | "
        f"{s.admitted_per_s:5.2f} admitted/s | "
        f"deadline violations {s.violations}, late returns {s.late_returns}"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rpm", type=float, default=600.0)
    parser.add_argument("--seed", type=int, default=66)
    args = parser.parse_args(argv)
    capacity = args.rpm / 60.0
    print(
        f"capacity {args.rpm:.0f} rpm ({capacity:.1f}/s), offered {OVERLOAD}x = "
        f"{OVERLOAD * capacity:.1f}/s for {args.seconds:.0f} s, {PREMIUM_SHARE:.0%} premium, "
        f"deadlines {DEADLINES}, queue {QUEUE}"
    )
    started = time.monotonic()
    results, span = run(args.rpm, args.seconds, args.seed)
    print(f"(ran {time.monotonic() - started:.1f} s; rates below are over {span:.1f} s)")
    prio = summarize(results["priority"], span)
    fifo = summarize(results["fifo"], span)
    report("priority", prio)
    report("fifo", fifo)
    ratio = prio.premium_p95 / fifo.premium_p95 if fifo.premium_p95 > 0 else math.nan
    print(
        f"premium p95 ratio priority/FIFO: {ratio:.2e} "
        f"({prio.premium_p95 * 1e3:.2f} ms vs {fifo.premium_p95 * 1e3:.1f} ms); premium "
        f"rejected {prio.rejected['premium']} vs {fifo.rejected['premium']}; utilisation "
        f"{prio.admitted_per_s / capacity:.2f} vs {fifo.admitted_per_s / capacity:.2f} of capacity"
    )

    failures = []
    if not prio.premium_p95 < P95_TARGET:
        failures.append(f"premium p95 {prio.premium_p95:.3f} s >= {P95_TARGET} s")
    for name, s in (("priority", prio), ("fifo", fifo)):
        if s.violations or s.late_returns:
            failures.append(
                f"{name}: {s.violations} deadline violations, {s.late_returns} late returns"
            )
    if prio.admitted_per_s < 0.9 * capacity:
        failures.append(f"priority admitted {prio.admitted_per_s:.2f}/s < 90% of capacity")
    if prio.rejected["premium"] > 0.01 * (prio.admitted["premium"] + prio.rejected["premium"]):
        failures.append(f"priority rejected {prio.rejected['premium']} premium requests (> 1%)")
    for failure in failures:
        print(f"TARGET MISSED: {failure}")
    if not failures:
        print(f"OK: premium p95 {prio.premium_p95:.3f} s < {P95_TARGET} s, no deadline passed")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
