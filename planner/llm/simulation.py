"""Replaying a generative scenario through the engine model: requests with prompt and output tokens, then
TTFT, TPOT, ITL and E2E with batch-means CIs, goodput, token rates, KV use, preemptions and energy by phase.

TPOT of a request is (E2E - TTFT) / (output tokens - 1) (requests with one output token have none); ITL is
every gap between two tokens of a request. The first `warmup_fraction` of arrivals is excluded (empty start)
from every figure, ITL included.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd

from measure.run import PhaseEnergy, Run
from measure.run.types import ResultModel
from planner.llm.disagg import KvLink, Pool, simulate_pd
from planner.llm.engine import EngineConfig, LlmRequests, simulate
from planner.llm.roofline import LlmProfile
from planner.llm.steps import StepModel
from planner.serving.simulation import SloCheck, Summary, batch_means_ci, slo_check, summarise_s
from planner.traffic.arrivals import MAX_REQUESTS, arrival_times, draw_sizes, trace_column
from planner.traffic.scenario import FromTrace, Scenario, ScenarioError, Slo, Trace
from planner.traffic.sessions import synthetic_prefixes

UNSTABLE_GROWTH = 2.0  # in-system requests at the end of the window vs its first half: queues grow


class LlmResult(ResultModel):
    """The `--json` contract of an LLM simulation (every duration in ms; see docs/llm-serving.md)."""

    source: str
    evidence: str
    inputs: dict[str, object]
    stable: bool
    throughput_when_saturated_rps: float | None
    offered_rps: float
    requests_total: int
    requests_measured: int
    warmup_excluded: int
    throughput_rps: float
    ttft_ms: Summary | None
    ttft_ci95_halfwidth_ms: Summary | None
    tpot_ms: Summary | None
    tpot_ci95_halfwidth_ms: Summary | None
    itl_ms: Summary | None
    e2e_ms: Summary | None
    e2e_ci95_halfwidth_ms: Summary | None
    goodput_rps: float | None
    input_tokens_per_s: float
    output_tokens_per_s: float
    utilization: float  # share of the replicas' time spent in engine steps (first arrival to last finish)
    kv_cache_utilization: float
    prefill_busy_share: float
    preemptions: int
    # prefix caching on: prompt tokens found cached over prompt tokens looked up (every admission attempt, as
    # vLLM counts its queries), and cached blocks evicted; null with it off
    prefix_hit_share: float | None = None
    prefix_evicted_blocks: int | None = None
    # prefix caching on: the share of the measured requests' prompt tokens the engine computed (the rest were
    # found cached when each was last admitted): what $/1M input tokens divides by; null with it off
    computed_prompt_share: float | None = None
    steps: int
    steps_beyond_measured_grid: int
    energy_j_per_request: float | None
    energy_j_per_output_token: float | None
    energy_prefill_share: float | None
    output_tokens_per_joule: float | None
    total_tokens_per_joule: float | None
    energy_note: str
    token_scale: float
    slo: list[SloCheck]
    warnings: list[str]


def _lengths(
    sc: Scenario, rng: np.random.Generator, n: int, frame: pd.DataFrame | None, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    assert sc.llm is not None
    out = []
    for dist, what in ((sc.llm.prompt, "prompt tokens"), (sc.llm.output, "output tokens")):
        if isinstance(dist, FromTrace):
            out.append(trace_column(frame, dist.column, notes, what))
        else:
            vals, clipped = draw_sizes(rng, dist, n)
            if clipped:
                notes.append(f"{clipped} {what} above a lognormal cap were clipped to it")
            out.append(vals)
    scale = sc.llm.scale
    if scale != 1.0:
        out = [np.maximum(1, np.rint(v * scale)).astype(np.int64) for v in out]
        notes.append(f"token lengths scaled by {scale:g} (prompt and output) before replay")
    return out[0], out[1]


def llm_requests(
    sc: Scenario, requests: int | None = None, seed: int | None = None
) -> tuple[LlmRequests, float, list[str]]:
    """The scenario's generative requests (arrivals, prompt and output tokens), its window and notes."""
    if sc.llm is None:
        raise ScenarioError(f"scenario {sc.name} has no llm block (prompt and output tokens)")
    if requests is not None:
        sc = sc.model_copy(update={"requests": requests, "duration_s": None})
    rng = np.random.default_rng(sc.seed if seed is None else seed)
    t, frame, notes = arrival_times(sc, rng)
    if t.size > MAX_REQUESTS:
        raise ScenarioError(f"scenario {sc.name}: {t.size:,} requests, over the {MAX_REQUESTS:,} limit")
    prompt, output = _lengths(sc, rng, t.size, frame, notes)
    window = float(sc.duration_s) if sc.duration_s is not None else float(t[-1])
    llm = sc.llm
    assert llm is not None  # checked above
    if llm.prefix is not None:
        if frame is not None and "hash_ids" in frame.columns:
            raise ScenarioError(
                f"scenario {sc.name}: its trace names prefix blocks (hash_ids) and llm.prefix states others; "
                "give one"
            )
        prompt, ids, block, said = synthetic_prefixes(llm.prefix, t, prompt, output, rng, llm.scale)
        notes += said
        return LlmRequests(t.astype(np.float64), prompt, output, ids, block), window, notes
    if frame is not None and "hash_ids" in frame.columns and isinstance(sc.arrivals, Trace):
        block = max(1, round(sc.arrivals.block_tokens * llm.scale))
        if llm.scale != 1.0:
            notes.append(
                f"prefix blocks scaled with the tokens: {sc.arrivals.block_tokens} x {llm.scale:g} = {block} "
                "tokens a hash id"
            )
        ids = tuple(frame["hash_ids"])
        return LlmRequests(t.astype(np.float64), prompt, output, ids, block), window, notes
    return LlmRequests(t.astype(np.float64), prompt, output), window, notes


def _phase_j(run: Run | LlmProfile, precision: str) -> tuple[float | None, float | None, str]:
    """Measured J per prefill token and per decode token at the precision, or why not."""
    if isinstance(run, LlmProfile):
        return (
            None,
            None,
            "energy unavailable: an assumed roofline profile states no power; none is estimated",
        )
    facts = run.llm
    if facts is None:
        return None, None, "energy unavailable: the run has no LLM facts"
    per = {
        e.phase: e.j_per_token
        for e in facts.energy
        if e.precision == precision and isinstance(e, PhaseEnergy)
    }
    pre, dec = per.get("prefill"), per.get("decode")
    if isinstance(pre, float) and isinstance(dec, float):
        return pre, dec, "device energy per token measured per phase (idle power and the host not included)"
    why = facts.energy_note or "no energy per phase at this precision"
    return None, None, f"energy unavailable: {why.removeprefix('energy unavailable: ')}"


def meets_slos(slos: list[Slo], ttft_s: np.ndarray, e2e_s: np.ndarray, tpot_s: np.ndarray) -> np.ndarray:
    """Per request, whether its TTFT, E2E and TPOT (0 for a one-token answer) are within every such SLO's
    threshold (ITL is per token: checked on its own)."""
    good = np.ones(ttft_s.size, dtype=bool)
    values = {"ttft": ttft_s, "e2e": e2e_s, "tpot": tpot_s}
    for x in slos:
        if x.metric in values:
            good &= values[x.metric] * 1000.0 <= x.threshold_ms
    return good


def queues_stable(reqs: LlmRequests, first_s: np.ndarray, window: float) -> bool:
    """False when the requests still waiting for their first token keep growing over the window."""
    grid = np.linspace(0, window, 21)[1:]
    waiting = np.searchsorted(reqs.arrival_s, grid, side="right") - np.searchsorted(
        np.sort(first_s), grid, side="right"
    )
    early, late = waiting[:10].mean(), waiting[-2:].mean()
    return not (late > UNSTABLE_GROWTH * early + 10)


def run_llm_simulation(
    sc: Scenario,
    model: StepModel,
    cfg: EngineConfig,
    replicas: int,
    router: str,
    run: Run | LlmProfile,
    requests: int | None = None,
    seed: int | None = None,
    extra_inputs: dict[str, object] | None = None,
    decode: Pool | None = None,
    link: KvLink | None = None,
) -> LlmResult:
    """Simulate and summarise; the SLOs are the scenario's. With a decode pool, `replicas`, `cfg` and `router`
    are the prefill pool's and each request's KV crosses `link` (disagg.py)."""
    reqs, window, notes = llm_requests(sc, requests, seed)
    s = sc.seed if seed is None else seed
    pools = replicas
    if decode is None:
        tr = simulate(reqs, model, cfg, replicas, router, seed=s)
        side = tr
    else:
        pd = simulate_pd(reqs, Pool(model, cfg, replicas, router), decode, link, s)
        tr, side = pd.trace, pd.prefill or pd.trace
        pools += decode.replicas
        link_ms = pd.link_s * 1000.0
        notes.append(
            f"disaggregated: {replicas} prefill and {decode.replicas} decode replicas ({decode.router}); each KV "
            f"over its prefill replica's link ({link.source if link else '-'}): median {np.median(link_ms):.3g} ms, "
            f"p99 {np.percentile(link_ms, 99):.3g} ms, waiting included; utilisation and steps count both pools"
        )
    n = reqs.arrival_s.size
    skip = int(n * sc.warmup_fraction)
    keep = slice(skip, n)
    arr, first, fin = reqs.arrival_s[keep], tr.first_s[keep], tr.finish_s[keep]
    out_tok, in_tok = reqs.output[keep], reqs.prompt[keep]
    ttft, e2e = first - arr, fin - arr
    multi = out_tok > 1
    tpot = (e2e[multi] - ttft[multi]) / (out_tok[multi] - 1)
    # the gaps of the measured requests only: warm-up requests are left out of ITL as of TTFT, TPOT and E2E
    itl = np.asarray(tr.itl_ms, dtype=np.float64)[np.asarray(tr.itl_request, dtype=np.int64) >= skip] / 1000.0
    span = float(np.nanmax(tr.finish_s) - reqs.arrival_s[0]) if n else 0.0
    stable = queues_stable(reqs, tr.first_s, window)
    warnings = list(notes) + list(model.notes)
    both = (tr,) if side is tr else (tr, side)  # the steps of every pool
    steps, beyond = sum(t.steps for t in both), sum(t.beyond_grid_steps for t in both)
    busy, prefill_busy = sum(t.busy_s for t in both), sum(t.prefill_busy_s for t in both)
    if beyond:
        warnings.append(
            f"optimistic: {beyond:,} of {steps:,} steps ran beyond the measured grid (batch, "
            "context or prefill tokens) and were timed at its edge"
        )
    if not stable:
        warnings.append("stable: false: requests waiting for their first token kept growing; add replicas")
    if reqs.prefix_ids is not None and not cfg.prefix_caching:
        warnings.append(
            "the trace names its prompts' prefix blocks, but prefix caching is off: every prompt is prefilled "
            "whole (--prefix-caching models vLLM's)"
        )
    elif cfg.prefix_caching and reqs.prefix_ids is None:
        warnings.append("prefix caching is on, but the traffic names no prefixes: no prompt is found cached")
    values = {"ttft": ttft, "tpot": tpot, "e2e": e2e, "itl": itl}
    checks = [slo_check(x, values[x.metric]) for x in sc.slo]
    per = np.zeros(arr.size)
    per[multi] = tpot
    good = meets_slos(sc.slo, ttft, e2e, per)
    pre_j, dec_j, energy_note = _phase_j(run, model.precision)
    e_req = e_tok = share = tpj_out = tpj_all = None
    if pre_j is not None and dec_j is not None:
        # a cached prompt token is not computed: it costs no prefill energy
        computed = in_tok - (side.cached_tokens[keep] if side.cached_tokens is not None else 0)
        e = computed * pre_j + out_tok * dec_j
        e_req, e_tok = float(e.mean()), float(e.sum() / out_tok.sum())
        share = float((computed * pre_j).sum() / e.sum())
        tpj_out, tpj_all = float(out_tok.sum() / e.sum()), float((out_tok + in_tok).sum() / e.sum())
    if sc.slo and any(x.metric == "itl" for x in sc.slo):
        warnings.append(
            "goodput counts ttft, tpot and e2e SLOs per request; itl is a per-token SLO, checked on its own"
        )
    return LlmResult(
        source="assumed" if isinstance(run, LlmProfile) else "measured",
        evidence=run.label()
        if isinstance(run, LlmProfile)
        else f"run {run.short_id()} ({run.workload.name}, {model.source}) at {model.precision}",
        inputs={
            "scenario": sc.name,
            "replicas": replicas,
            "router": router,
            **(
                {
                    "decode_replicas": decode.replicas,
                    "decode_router": decode.router,
                    "kv_link": asdict(link) if link else None,
                }
                if decode is not None
                else {}
            ),
            **asdict(cfg),  # the engine knobs, by their vLLM names
            "seed": s,
            **(extra_inputs or {}),
        },
        stable=stable,
        throughput_when_saturated_rps=None if stable else float(n / span) if span > 0 else None,
        offered_rps=float(n / window) if window > 0 else 0.0,
        requests_total=n,
        requests_measured=int(arr.size),
        warmup_excluded=skip,
        throughput_rps=float(n / span) if span > 0 else 0.0,
        ttft_ms=summarise_s(ttft) if ttft.size else None,
        ttft_ci95_halfwidth_ms=batch_means_ci(ttft),
        tpot_ms=summarise_s(tpot) if tpot.size else None,
        tpot_ci95_halfwidth_ms=batch_means_ci(tpot),
        itl_ms=summarise_s(itl) if itl.size else None,
        e2e_ms=summarise_s(e2e) if e2e.size else None,
        e2e_ci95_halfwidth_ms=batch_means_ci(e2e),
        goodput_rps=float(good.mean() * n / window) if sc.slo and window > 0 and good.size else None,
        input_tokens_per_s=float(reqs.prompt.sum() / span) if span > 0 else 0.0,
        output_tokens_per_s=float(reqs.output.sum() / span) if span > 0 else 0.0,
        utilization=float(min(1.0, busy / (pools * span))) if span > 0 else 0.0,
        kv_cache_utilization=float(tr.kv_used_time / tr.busy_s) if tr.busy_s > 0 else 0.0,
        prefill_busy_share=float(prefill_busy / busy) if busy > 0 else 0.0,
        preemptions=int(tr.preempted.sum()),
        prefix_hit_share=side.prefix_hit_tokens / side.prefix_queried_tokens
        if cfg.prefix_caching and side.prefix_queried_tokens
        else None,
        prefix_evicted_blocks=side.prefix_evicted_blocks if cfg.prefix_caching else None,
        computed_prompt_share=float(1 - side.cached_tokens[keep].sum() / in_tok.sum())
        if side.cached_tokens is not None and in_tok.sum() > 0
        else None,
        steps=steps,
        steps_beyond_measured_grid=beyond,
        energy_j_per_request=e_req,
        energy_j_per_output_token=e_tok,
        energy_prefill_share=share,
        output_tokens_per_joule=tpj_out,
        total_tokens_per_joule=tpj_all,
        energy_note=energy_note,
        token_scale=sc.llm.scale if sc.llm else 1.0,
        slo=checks,
        warnings=warnings,
    )
