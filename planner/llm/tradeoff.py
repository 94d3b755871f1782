"""What each millisecond of TTFT and TPOT objective costs, per sized LLM option.

For one option the replica counts are simulated from the fewest that keep queues stable upward (same requests
and seed at every count) until neither the p99 TTFT nor the p99 TPOT improves by LADDER_GAIN; any pair of
thresholds is then answered from that ladder without simulating again: the fewest simulated replicas whose
TTFT and TPOT percentiles are both within them. Counts above the ladder's top are not claimed.
"""

from __future__ import annotations

from dataclasses import dataclass

from measure.run.types import ResultModel
from planner.fleet.tradeoff import PERCENTILE_KEYS
from planner.llm.disagg import KvLink, decode_pool
from planner.llm.engine import EngineConfig
from planner.llm.simulation import LlmResult, run_llm_simulation
from planner.llm.sizing import SECONDS_PER_MONTH, LlmSized, ReplicaCounts, Source, default_router
from planner.llm.sources import load_source, source_step_model
from planner.llm.steps import StepModel
from planner.serving.simulation import Summary
from planner.traffic.scenario import Scenario

LADDER_GAIN = 0.05  # finer gains are within the noise of one 3,000-request simulation
MAX_RUNGS = 10
METRICS = ("ttft", "tpot")


class LlmRung(ResultModel):
    """One simulated replica count (disaggregated: one split of it)."""

    replicas: int
    prefill_replicas: int | None = None
    decode_replicas: int | None = None
    ttft_ms: Summary
    tpot_ms: Summary
    goodput_rps: float | None


class LlmLadder(ResultModel):
    """Simulated TTFT and TPOT by replica count for one option; the lowest stable count first."""

    label: str
    monthly_per_replica_usd: float | None
    output_tokens_per_month: float
    rungs: list[LlmRung]
    simulations: int
    unstable_below: int  # the highest count simulated whose queues grew (0: none)
    plateau: bool  # the top rung improved on the one below by less than LADDER_GAIN: more would not help


@dataclass(frozen=True)
class LadderTask:
    """One option's ladder, as a worker process takes it."""

    scenario: Scenario
    option: LlmSized
    requests: int = 3000


def ladder_task(t: LadderTask) -> LlmLadder:
    """llm_ladder for a worker process."""
    return llm_ladder(t.scenario, t.option, t.requests)


def llm_ladder(sc: Scenario, o: LlmSized, requests: int = 3000, max_replicas: int = 256) -> LlmLadder:
    """Find the fewest stable replicas by doubling then bisecting, then climb one at a time to the plateau."""
    run = load_source(o.run)
    model = source_step_model(run, o.precision)
    cfg = EngineConfig(
        o.max_num_seqs, o.max_num_batched_tokens, o.chunked_prefill, 16, o.kv_blocks, o.prefix_caching
    )
    if o.disaggregated:
        return _split_ladder(sc, o, run, model, cfg, requests)
    sim = ReplicaCounts(sc, run, model, cfg, requests, o.router)
    lo, hi = 0, 1
    while not sim(hi).stable:
        lo, hi = hi, hi * 2
        if hi > max_replicas:
            return _ladder(o, [], sim.simulations, lo, sim(lo), False)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if sim(mid).stable else (mid, hi)
    rungs: list[LlmRung] = []
    n, plateau = hi, False
    while len(rungs) < MAX_RUNGS and n <= max_replicas:
        r = sim(n)
        if r.ttft_ms is None or r.tpot_ms is None:
            break
        rungs.append(LlmRung(replicas=n, ttft_ms=r.ttft_ms, tpot_ms=r.tpot_ms, goodput_rps=r.goodput_rps))
        if len(rungs) >= 2 and all(
            getattr(rungs[-1], f"{m}_ms").p99 > getattr(rungs[-2], f"{m}_ms").p99 * (1 - LADDER_GAIN)
            for m in METRICS
        ):
            plateau = True
            break
        n += 1
    return _ladder(o, rungs, sim.simulations, lo, sim(hi), plateau)


SPLIT_TOTALS = 4  # a disaggregated ladder: every split of the sized total and of the next three


def _split_ladder(
    sc: Scenario, o: LlmSized, run: Source, model: StepModel, cfg: EngineConfig, requests: int
) -> LlmLadder:
    """Every (prefill, decode) split of the sized total and the next SPLIT_TOTALS - 1 totals: the TTFT-TPOT
    frontier a split buys, rung by rung (fewest replicas first)."""
    if o.kv_link is None or not o.replicas:
        return LlmLadder(
            label=o.label, monthly_per_replica_usd=None, output_tokens_per_month=0.0, rungs=[], simulations=0,
            unstable_below=0, plateau=False,
        )  # fmt: skip
    link = KvLink(*o.kv_link, "the option's")
    route = o.router or default_router(cfg.prefix_caching)
    rungs: list[LlmRung] = []
    last: LlmResult | None = None
    for total in range(o.replicas, o.replicas + SPLIT_TOTALS):
        for p in range(1, total):
            r = run_llm_simulation(
                sc,
                model,
                cfg,
                p,
                route,
                run,
                requests,
                None,
                None,
                decode_pool(model, cfg, total - p, route),
                link,
            )
            last = r
            if r.stable and r.ttft_ms is not None and r.tpot_ms is not None:
                rungs.append(
                    LlmRung(
                        replicas=total, prefill_replicas=p, decode_replicas=total - p, ttft_ms=r.ttft_ms,
                        tpot_ms=r.tpot_ms, goodput_rps=r.goodput_rps,
                    )
                )  # fmt: skip
    sims = sum(t - 1 for t in range(o.replicas, o.replicas + SPLIT_TOTALS))
    assert last is not None
    return _ladder(o, rungs, sims, 0, last, False)


def _ladder(o: LlmSized, rungs: list[LlmRung], sims: int, lo: int, r: LlmResult, plateau: bool) -> LlmLadder:
    per = o.monthly_cost_usd / o.replicas if o.monthly_cost_usd is not None and o.replicas else None
    out_month = r.offered_rps * (r.output_tokens_per_s / r.throughput_rps if r.throughput_rps else 0.0)
    return LlmLadder(
        label=o.label,
        monthly_per_replica_usd=per,
        output_tokens_per_month=out_month * SECONDS_PER_MONTH,
        plateau=plateau,
        rungs=rungs,
        simulations=sims,
        unstable_below=lo,
    )


def rung_for(lad: LlmLadder, percentile: float, ttft_ms: float, tpot_ms: float) -> LlmRung | None:
    """The fewest simulated replicas (disaggregated: that split) meeting both thresholds at the percentile."""
    key = PERCENTILE_KEYS[percentile]
    return next(
        (r for r in lad.rungs if getattr(r.ttft_ms, key) <= ttft_ms and getattr(r.tpot_ms, key) <= tpot_ms),
        None,
    )


def replicas_for(lad: LlmLadder, percentile: float, ttft_ms: float, tpot_ms: float) -> int | None:
    """The fewest simulated replicas meeting both thresholds at the percentile (None: none on the ladder)."""
    r = rung_for(lad, percentile, ttft_ms, tpot_ms)
    return None if r is None else r.replicas


def why_not(lad: LlmLadder, percentile: float, ttft_ms: float, tpot_ms: float) -> str:
    """Why no simulated count meets the thresholds: which objective, by how much, at the best count."""
    if not lad.rungs:
        return f"queues grow at every count up to {lad.unstable_below} replicas"
    key = PERCENTILE_KEYS[percentile]
    misses = []
    for m, limit in (("ttft", ttft_ms), ("tpot", tpot_ms)):
        v, n = min((float(getattr(getattr(r, f"{m}_ms"), key)), r.replicas) for r in lad.rungs)
        if v > limit:
            alone = (
                " (more replicas did not help: the step times alone exceed it)"
                if lad.plateau
                else f" (the ladder stops at {lad.rungs[-1].replicas} replicas)"
            )
            misses.append(
                f"p{percentile:g} {m.upper()} misses by {v - limit:.3g} ms: best {v:.3g} ms at {n} "
                f"replicas{alone}"
            )
    return "; ".join(misses) or (
        "no single simulated count meets both: the TTFT and TPOT thresholds are met at different counts"
    )
