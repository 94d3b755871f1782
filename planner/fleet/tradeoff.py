"""What each millisecond of SLO costs: latency percentiles by replica count, per option, and the frontier.

For one option at the scenario's peak level, a ladder of replica counts is simulated from the stability
bound upward (same stream and seed for every count) until adding a replica improves the p99 by less than
LADDER_GAIN. The minimum cost for any latency threshold is then read off the ladder without simulating
again: the fewest replicas whose simulated percentile is within the threshold. Counts above the ladder's
top are not claimed: a threshold the top rung misses has no answer.
"""

from __future__ import annotations

import math

from measure.run.types import ResultModel as _Out
from planner.fleet.levels import levels
from planner.fleet.searcher import Searcher
from planner.fleet.sizing import Task, option_models, traffic_for
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import Summary

LADDER_GAIN = 0.01
MAX_RUNGS = 16
PERCENTILE_KEYS = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99", 99.9: "p999"}


class Rung(_Out):
    """One simulated replica count."""

    replicas: int
    latency_ms: Summary
    utilization: float | None


class Ladder(_Out):
    """Simulated latency by replica count for one option at the peak level."""

    key: str
    label: str
    source: str
    device: str
    group: str
    rate_rps: float
    rungs: list[Rung]
    simulations: int


def ladder(task: Task) -> Ladder:
    """Simulate counts upward from the stability bound until the p99 stops improving (worker process)."""
    opt = task.option
    pess, *_ = option_models(opt, task.service_scale)
    lv = levels(task.scenario, task.sizing_requests)[0][0]
    assert lv.scenario is not None
    reqs = traffic_for(lv.scenario)
    s = Searcher(lv.scenario, pess, BatchPolicy(opt.max_batch, opt.max_delay_ms / 1000.0), opt.router, reqs)
    rungs: list[Rung] = []
    n = s.lower_bound()
    while len(rungs) < MAX_RUNGS and n <= task.max_replicas:
        r = s.probe(n).result
        if r.latency_ms is None:
            n += 1
            continue
        rungs.append(Rung(replicas=n, latency_ms=r.latency_ms, utilization=r.utilization))
        if len(rungs) >= 2 and rungs[-1].latency_ms.p99 > rungs[-2].latency_ms.p99 * (1 - LADDER_GAIN):
            break
        n += 1
    rate = lv.rate_rps if not math.isnan(lv.rate_rps) else len(reqs) / reqs.window_s
    return Ladder(
        key=opt.key,
        label=opt.label,
        source=pess.source,
        device=opt.evidence.device,
        group=opt.evidence.group,
        rate_rps=rate,
        rungs=rungs,
        simulations=s.simulations,
    )


def replicas_for(lad: Ladder, percentile: float, threshold_ms: float) -> int | None:
    """The fewest simulated replicas whose latency percentile is within the threshold (None: none on the ladder)."""
    key = PERCENTILE_KEYS[percentile]
    return next((r.replicas for r in lad.rungs if getattr(r.latency_ms, key) <= threshold_ms), None)


def pareto(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The (latency, cost, label) points no other point beats on both; sorted by latency."""
    front: list[tuple[float, float, str]] = []
    for p in sorted(points, key=lambda x: (x[0], x[1])):
        if not front or p[1] < front[-1][1]:
            front.append(p)
    return front
