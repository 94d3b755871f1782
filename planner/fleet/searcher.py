"""One option at one level: replica counts simulated (cached, common random numbers) for the shared search,
and the count just below the answer with the SLO it failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from measure.run.types import ResultModel as _Out
from planner.serving.search import Verdict, smallest_passing
from planner.serving.service import ServiceModel
from planner.serving.sim import BatchPolicy, Router
from planner.serving.simulation import SimResult, SimReuse, run_simulation
from planner.traffic.arrivals import Requests
from planner.traffic.scenario import Scenario


class Below(_Out):
    """The count just below the answer, and why it fails."""

    replicas: int
    stable: bool
    failed_slo: str | None
    observed_ms: float | None
    threshold_ms: float | None
    by_ms: float | None  # observed - threshold
    reason: str


@dataclass
class Probe:
    """One simulated count: its result, whether every SLO held, and the worst observed/threshold ratio."""

    n: int
    result: SimResult
    ok: bool
    worst: float  # max observed / threshold over the SLOs (inf when unstable)


@dataclass
class Searcher:
    """Evaluates replica counts for one option and level, caching every simulation it runs."""

    sc: Scenario
    model: ServiceModel
    policy: BatchPolicy
    router: Router
    traffic: Requests
    early_stop: bool = False
    reuse: SimReuse | None = None  # simulations of the same evidence at other max_batch values
    cache: dict[int, Probe] = field(default_factory=dict)
    simulations: int = 0
    stopped_early: int = 0
    reused: int = 0  # counts answered by a simulation run for another max_batch (exact, see SimReuse)

    def lower_bound(self) -> int:
        seq = self.traffic.seq_len
        rep_seq = int(np.median(seq)) if seq is not None and None not in self.model.tables else None
        per = self.model.sustainable_items_per_s(self.policy.max_batch, rep_seq) / float(
            self.traffic.items.mean()
        )
        offered = len(self.traffic) / self.traffic.window_s
        return max(1, math.floor(offered / per) + 1)

    def probe(self, n: int) -> Probe:
        hit = self.cache.get(n)
        if hit is not None:
            return hit
        hits = self.reuse.hits if self.reuse is not None else 0
        r = run_simulation(
            self.sc,
            self.model,
            n,
            self.router,
            self.policy,
            traffic=self.traffic,
            early_stop=self.early_stop,
            reuse=self.reuse,
        )
        if r.stable:
            self.simulations += 1
            self.stopped_early += r.stopped_early is not None
            self.reused += (self.reuse.hits if self.reuse is not None else 0) - hits
        ratios = [(c.observed_ms / c.threshold_ms) if c.observed_ms is not None else math.inf for c in r.slo]
        p = Probe(n, r, r.stable and all(c.met for c in r.slo), max(ratios) if r.stable else math.inf)
        self.cache[n] = p
        return p

    def verdict(self, n: int) -> Verdict:
        p = self.probe(n)
        return Verdict(p.ok, p.result.stable, p.worst, p.result.utilization)

    def smallest(self, cap: int) -> tuple[Probe | None, str | None]:
        """The smallest passing count (the shared search, from the lower bound) or None with the reason."""
        found = smallest_passing(self.verdict, self.lower_bound(), cap)
        if found.replicas is not None:
            return self.probe(found.replicas), None
        if found.stuck_at is not None:
            p = self.probe(found.stuck_at)
            return None, (
                f"more replicas do not help: at {p.n} replicas (utilization {p.result.utilization:.0%}) "
                f"{_why(p)}; the service time itself is too slow for this SLO (try a smaller max_batch or "
                "max_delay, or a faster device or precision)"
            )
        last = self.probe(min(cap, max(found.last_failing, 1)))
        return None, f"no count up to the cap of {cap} replicas meets the SLOs ({_why(last)})"

    def below(self, n: int) -> Below | None:
        if n <= 1:
            return None
        p = self.probe(n - 1)
        if not p.result.stable:
            return Below(
                replicas=n - 1,
                stable=False,
                failed_slo=None,
                observed_ms=None,
                threshold_ms=None,
                by_ms=None,
                reason=f"unstable: offered {p.result.offered_rps:.4g} req/s >= sustainable "
                f"{p.result.sustainable_rps:.4g} req/s",
            )
        worst = max(p.result.slo, key=lambda c: (c.observed_ms or math.inf) / c.threshold_ms)
        obs = worst.observed_ms
        return Below(
            replicas=n - 1,
            stable=True,
            failed_slo=worst.slo,
            observed_ms=obs,
            threshold_ms=worst.threshold_ms,
            by_ms=None if obs is None else obs - worst.threshold_ms,
            reason=_why(p),
        )


def _why(p: Probe) -> str:
    if not p.result.stable:
        return f"{p.n} replicas are unstable"
    missed = [c for c in p.result.slo if not c.met]
    if not missed:
        return f"{p.n} replicas meet every SLO"
    c = max(missed, key=lambda c: (c.observed_ms or math.inf) / c.threshold_ms)
    return f"{c.slo} missed with {c.observed_ms:.4g} ms at {p.n} replicas"


# ------------------------------------------------------------------------------------------------ worker
