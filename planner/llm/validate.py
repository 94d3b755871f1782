"""An LLM run's predictions held against live traffic, below any front end.

Every level's traffic is drawn and checked before anything is sent (`level_traffic`); a level observed live is
predicted from the same arrivals and what each request really was (`predict_level`); a recorded validation is
re-predicted with a later engine model without sending anything (`recheck`). Sending (HTTP streams, timed from
each scheduled send) is the caller's: the CLI drives measure/'s open loop and hands the observations here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from measure.run import EngineCounters, Run
from planner.evidence.llm_validation import (
    MAX_VALIDATION_REQUESTS,
    LlmLevel,
    LlmValidation,
    llm_level,
    verdict,
)
from planner.llm.engine import EngineConfig, EngineError, LlmRequests, simulate
from planner.llm.simulation import llm_requests, queues_stable
from planner.llm.steps import StepModel, step_model
from planner.traffic.scenario import Scenario

MIN_LEVEL_REQUESTS = 60


class LlmValidationError(ValueError):
    """Traffic that cannot be sent or predicted (over the file's budget, beyond the KV cache, another run)."""


@dataclass(frozen=True)
class LevelTraffic:
    """One load level's requests, fixed before anything is sent: send times (s from the level's start) and the
    scenario's prompt and output tokens (and prefix block ids, from a trace that has them); `seed` also salts the
    level's prefix blocks, so that no level hits what an earlier one left in the engine's cache."""

    load: float
    rate_rps: float
    requests: LlmRequests
    seed: int


@dataclass(frozen=True)
class Observed:
    """A level as the engine served it, aligned with its requests: first and last token times (s from the start,
    NaN where a request failed), tokens streamed, lateness of each send, why each failed (None: ok), how many
    ended before max_tokens, the prompt tokens the engine reported prefilling, and the output tokens the
    prediction replays for each (what it produced; for a failed request what was asked, where known)."""

    first_s: np.ndarray
    last_s: np.ndarray
    tokens: np.ndarray
    late_ms: np.ndarray
    failures: list[str | None]
    early_ends: int
    prompts: np.ndarray
    replay_outputs: np.ndarray


def level_traffic(
    sc: Scenario, cfg: EngineConfig, sustainable_rps: float, loads: list[float], seconds: float
) -> list[LevelTraffic]:
    """Poisson traffic at each load x the sustainable rate for `seconds` (at least MIN_LEVEL_REQUESTS), with the
    scenario's lengths; every request checked against the engine's knobs and the file's request budget."""
    out: list[LevelTraffic] = []
    total = 0
    for i, load in enumerate(loads):
        rate = load * sustainable_rps
        n = max(MIN_LEVEL_REQUESTS, int(rate * seconds))
        total += n
        if total > MAX_VALIDATION_REQUESTS:
            raise LlmValidationError(
                f"load {load:g}: {total:,} requests in all at {sustainable_rps:.3g} req/s sustainable x "
                f"{seconds:g} s, over the {MAX_VALIDATION_REQUESTS:,} one validation file keeps; shorten --seconds"
            )
        reqs, _, _ = llm_requests(sc, n, seed=sc.seed + 1 + i)
        for p, o in zip(reqs.prompt.tolist(), reqs.output.tolist(), strict=True):
            why = cfg.check(p, o)
            if why:
                raise LlmValidationError(f"load {load:g}: {why}")
        send = _trace_times(reqs.arrival_s, rate) if reqs.prefix_ids is not None else None
        if send is None:
            rng = np.random.default_rng(sc.seed + 1000 + i)
            send = np.cumsum(rng.exponential(1.0 / rate, n))
            send -= send[0]
        shaped = LlmRequests(send, reqs.prompt, reqs.output, reqs.prefix_ids, reqs.prefix_block_tokens)
        out.append(LevelTraffic(load, rate, shaped, 100_000 * (i + 1)))
    return out


def _trace_times(arrival_s: np.ndarray, rate: float) -> np.ndarray | None:
    """A trace's arrivals (its bursts and lulls kept) compressed or stretched to `rate` on average; None when
    its requests all arrive at once."""
    span = float(arrival_s[-1] - arrival_s[0])
    if span <= 0:
        return None
    t = (arrival_s - arrival_s[0]) * ((arrival_s.size - 1) / span / rate)
    return t.astype(np.float64)


def predict_level(
    load: float,
    rate_rps: float,
    send_s: np.ndarray,
    seen: Observed,
    model: StepModel,
    cfg: EngineConfig,
    seed: int,
    warmup_fraction: float,
    load_average: float | None,
    cpus: int,
    counters: EngineCounters | None = None,
    prefix: tuple[tuple[int, ...], ...] | None = None,
    prefix_block_tokens: int = 512,
    prefix_salt: int | None = None,
) -> LlmLevel:
    """The engine model fed the same arrivals, the prompts the engine reported and the tokens each request
    produced (max_tokens where it failed), compared with what was observed; with the engine's own counters
    over the level when it exposes them, its steps and mean batch beside the model's; with the prefix block ids
    the prompts were built from, the share of prompt tokens found cached, engine's and model's."""
    replay = LlmRequests(
        send_s.astype(np.float64),
        np.maximum(seen.prompts, 1),
        np.maximum(seen.replay_outputs, 1),
        prefix,
        prefix_block_tokens,
    )
    tr = simulate(replay, model, cfg, 1, "round-robin", seed=seed)
    level = llm_level(
        load,
        rate_rps,
        send_s,
        seen.first_s,
        seen.last_s,
        seen.tokens,
        seen.late_ms,
        seen.failures,
        seen.early_ends,
        tr.first_s,
        tr.finish_s,
        queues_stable(replay, tr.first_s, float(send_s[-1])),
        tr.beyond_grid_steps / tr.steps if tr.steps else None,
        warmup_fraction,
        load_average,
        cpus,
        replay.prompt,
        prefix,
    )
    generated = int(replay.output.sum())
    diagnosis = list(level.diagnosis)
    hits: dict[str, float | int | None] = {}
    if prefix is not None:
        hits = {"prefix_block_tokens": prefix_block_tokens, "prefix_salt": prefix_salt}
        if cfg.prefix_caching and tr.prefix_queried_tokens:
            hits["prefix_hit_share_simulated"] = tr.prefix_hit_tokens / tr.prefix_queried_tokens
        if counters is not None and counters.prefix_cache_queries and counters.prefix_cache_hits is not None:
            hits["prefix_hit_share_engine"] = counters.prefix_cache_hits / counters.prefix_cache_queries
        sim, live = hits.get("prefix_hit_share_simulated"), hits.get("prefix_hit_share_engine")
        if sim is not None and live is not None:
            diagnosis.append(
                f"prompt tokens found cached: {live:.1%} by the engine's /metrics, {sim:.1%} simulated "
                f"({(sim - live) * 100:+.1f} points)"
            )
    if counters is not None and counters.steps and counters.generation_tokens is not None and tr.steps:
        live_batch, sim_batch = counters.generation_tokens / counters.steps, generated / tr.steps
        diagnosis.append(
            f"engine steps (its /metrics): {counters.steps:,.0f} live vs {tr.steps:,} simulated; mean batch "
            f"{live_batch:.3g} live vs {sim_batch:.3g} simulated"
            + (f"; {counters.preemptions:,.0f} preemptions" if counters.preemptions else "")
        )
    return level.model_copy(
        update={
            "engine_counters": counters,
            "simulated_steps": tr.steps,
            "simulated_mean_batch": generated / tr.steps if tr.steps else None,
            "diagnosis": diagnosis,
            **hits,
        }
    )


def recheck(
    old: LlmValidation, run: Run, where: str = "validation", calibrated: bool = False
) -> LlmValidation:
    """Every level of a validation re-predicted from the live traffic it recorded, with the current engine
    model and the file's knobs; the measurements are the file's own, nothing is sent. `calibrated`: the run's
    decode steps fitted by replaying its closed loops (calibrate.py) instead of read off its gaps."""
    if run.id != old.run_id:
        raise LlmValidationError(f"{where} validates run {old.run_id[7:19]}, not {run.short_id()}")
    k = old.knobs
    cfg = EngineConfig(
        k.max_num_seqs,
        k.max_num_batched_tokens,
        k.chunked_prefill,
        k.block_size,
        k.kv_blocks,
        prefix_caching=old.prefix_caching,
    )
    if calibrated:
        from planner.llm.calibrate import calibrate

        model, fit = calibrate(run, old.precision, cfg)
        worst = max(fit.settings, key=lambda f: abs(f.gap_median_error_pct))
        model.notes.append(
            f"calibration residuals: {sum(abs(f.gap_median_error_pct) <= 1 for f in fit.settings)} of "
            f"{len(fit.settings)} settings' median gaps within 1%; the worst {worst.gap_median_error_pct:+.1f}% "
            f"(prompt {worst.prompt_tokens}, concurrency {worst.concurrency}: a non-monotone measured curve)"
        )
    else:
        model = step_model(run, old.precision)
    levels = []
    nan = float("nan")
    for lv in old.levels:
        rq = lv.requests_sent
        if not rq:
            raise LlmValidationError(
                f"{where}: load {lv.load:g} has no request records (written before they were kept)"
            )
        send = np.array([x.send_ms for x in rq]) / 1000.0
        tokens = np.array([x.output_tokens for x in rq], dtype=np.int64)
        seen = Observed(
            first_s=np.array(
                [send[i] + x.ttft_ms / 1000.0 if x.ttft_ms is not None else nan for i, x in enumerate(rq)]
            ),
            last_s=np.array(
                [send[i] + x.e2e_ms / 1000.0 if x.e2e_ms is not None else nan for i, x in enumerate(rq)]
            ),
            tokens=tokens,
            late_ms=np.array([x.late_ms for x in rq]),
            failures=[None if x.ttft_ms is not None else "failed (as recorded)" for x in rq],
            early_ends=lv.early_ends,
            prompts=np.maximum(1, np.array([x.prompt_tokens for x in rq], dtype=np.int64)),
            # a file keeps what each request produced, not what it asked for: a failed one replays 1 token
            replay_outputs=np.maximum(tokens, 1),
        )
        ids = [x.prefix_ids for x in rq]
        prefix = None if any(x is None for x in ids) else tuple(tuple(x or ()) for x in ids)
        try:
            again = predict_level(
                lv.load,
                lv.rate_rps,
                send,
                seen,
                model,
                cfg,
                0,
                old.warmup_fraction,
                lv.load_average,
                old.cpu_count,
                lv.engine_counters,
                prefix,
                lv.prefix_block_tokens or 512,
                lv.prefix_salt,
            )
        except EngineError as exc:
            raise LlmValidationError(f"{where}: load {lv.load:g}: {exc}") from None
        if (
            lv.drift is not None
        ):  # the canary moved around this level: a new prediction does not judge it either
            again = again.model_copy(update={"drift": lv.drift, "diagnosis": [*again.diagnosis, lv.drift]})
        levels.append(again)
    v = old.model_copy(
        update={
            "levels": levels,
            "verdict": verdict(levels),
            "notes": [*old.notes, *model.notes],
            "recheck_of": where,
            "predicted_at": datetime.now(UTC),
        }
    )
    return LlmValidation.model_validate(v.model_dump())
