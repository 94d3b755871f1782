"""Sequential stopping for SLO verdicts: end a simulation once its pass/fail verdict is statistically settled.

A sizing search only needs each replica count's verdict (does every SLO hold?), and most counts are far from
their thresholds: simulating 30,000 requests to learn that a p99 of 20 ms is under 100 ms wastes the time a
planner waits. The rule, checked at a few looks (measured requests in `LOOKS`), for every SLO:

- the SLO percentile of the measured requests so far, with a batch-quantile confidence interval over
  `BATCHES` contiguous batches (arrival order, the same method as the reported CIs) at confidence
  1 - ALPHA / looks per look (Bonferroni over the looks, so the chance of stopping on a wrong side stays
  under ALPHA by the batch-means model); a queue still drifting upward spreads its batches, which widens
  the interval.

Stop with "missed" when one SLO's interval lies above its threshold. Stop with "met" when every SLO's interval
lies below its threshold at `MET_LOOKS` consecutive looks and the replicas are at most `MET_MAX_UTILIZATION`
busy. The two sides are not symmetric on purpose: the system starts empty and bursts are rare, so an early
look is more likely optimistic than pessimistic (bursty-api, gamma cv 3: a p99 of 111 ± 38 ms over the first
6,297 requests was 166 ms over 200,000). A percentile needs at least `MIN_TAIL_PER_BATCH` expected exceedances per batch to be judged
early (p99: 200 requests per batch); otherwise that simulation runs to full length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from planner.serving.batch_stats import batch_percentiles
from planner.traffic.scenario import Slo

LOOKS = (4_000, 6_000, 9_000, 13_000, 19_000)  # measured requests at which the verdict is checked
ALPHA = 0.01  # over all looks of one simulation
BATCHES = 20
MIN_TAIL_PER_BATCH = 2.0  # expected requests beyond the percentile in each batch
# heavy traffic: a queue's excursions last ~1/(1-utilization)^2 service times, longer than the looks; a calm
# start there says little about the rest (a 'met' at 4,000 requests and 89% busy was 101 ms vs 100 at 27,000)
MET_MAX_UTILIZATION = 0.8
MET_LOOKS = 2
LOOK_SLACK = 1.05  # a look waits for a few more arrivals than it needs: some are still queued at that time


@dataclass(frozen=True)
class Settled:
    """A settled verdict at a look: whether every SLO holds, and the sentence that says why."""

    met: bool
    reason: str


def rule_text() -> str:
    """The stopping rule in one sentence, for the plan and the JSON."""
    return (
        f"each simulation stops early once every SLO's verdict is settled: at {', '.join(f'{k:,}' for k in LOOKS)} "
        f"measured requests, the SLO percentile's batch-quantile CI ({BATCHES} batches, confidence "
        f"{1 - ALPHA:.0%} over the looks) lies wholly below its threshold for every SLO (met) or above it for "
        f"one (missed); 'met' also needs "
        f"{MET_LOOKS} looks in a row and the replicas under {MET_MAX_UTILIZATION:.0%} busy; otherwise it runs to "
        "full length"
    )


def look_arrivals(total: int, warm: int, slos: Sequence[Slo]) -> list[int]:
    """Arrival counts at which to look (after the warm-up), skipping looks that cannot judge every SLO."""
    need = max((_min_measured(s) for s in slos), default=math.inf)
    out = []
    for m in LOOKS:
        k = warm + math.ceil(m * LOOK_SLACK)
        if m >= need and k < total:
            out.append(k)
    return out


def _min_measured(s: Slo) -> float:
    tail = 1.0 - s.percentile / 100.0
    return BATCHES * MIN_TAIL_PER_BATCH / tail if tail > 0 else math.inf


def settle(
    slos: Sequence[Slo], lat: np.ndarray, queue: np.ndarray, looks: int, utilization: float
) -> Settled | None:
    """The settled verdict over these measured requests (seconds, arrival order), or None to keep simulating;
    `utilization` is the replicas' busy fraction so far."""
    if not slos or looks < 1:
        return None
    t = float(sps.t.ppf(1.0 - ALPHA / (2 * looks), BATCHES - 1))
    passed: list[str] = []
    for s in slos:
        x = lat if s.metric == "latency" else queue
        if x.size < _min_measured(s):
            continue  # this SLO cannot be judged yet: it can neither pass nor fail the count
        est = float(np.percentile(x, s.percentile, method="linear")) * 1000.0
        per = batch_percentiles(x, BATCHES, [s.percentile])[:, 0]
        half = t * float(np.std(per, ddof=1)) / math.sqrt(BATCHES) * 1000.0
        thr = s.threshold_ms
        what = f"p{s.percentile:g} {s.metric} {est:.4g} ± {half:.2g} ms over {x.size:,} requests"
        if est - half > thr:
            return Settled(False, f"{what}: above {thr:g} ms")  # one missed SLO settles the count
        if est + half < thr:
            passed.append(f"{what}: below {thr:g} ms")
    if len(passed) == len(slos) and utilization <= MET_MAX_UTILIZATION:
        return Settled(True, "; ".join(passed))
    return None


class Sequential:
    """The looks of one simulation: a missed verdict stops at once, a met one after MET_LOOKS in a row."""

    def __init__(self, slos: Sequence[Slo], looks: int) -> None:
        self.slos, self.looks, self.met_in_a_row = slos, looks, 0

    def look(self, lat: np.ndarray, queue: np.ndarray, utilization: float) -> Settled | None:
        verdict = settle(self.slos, lat, queue, self.looks, utilization)
        if verdict is None or verdict.met:
            self.met_in_a_row = self.met_in_a_row + 1 if verdict is not None else 0
            if verdict is None or self.met_in_a_row < MET_LOOKS:
                return None
        return verdict
