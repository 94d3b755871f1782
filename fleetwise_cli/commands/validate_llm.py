"""`fleetwise validate` on an LLM run: open-loop streaming traffic against a live engine at fractions of its
measured sustainable rate, compared with the engine model fed the same arrivals, lengths and knobs."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape

from fleetwise_cli.common import err, out, write_json
from fleetwise_cli.errors import (
    EXIT_INTERRUPTED,
    fail,
    raise_if_interrupted,
    save_or_fallback,
    sigterm_as_interrupt,
)
from fleetwise_cli.render.validation import print_llm_validation
from measure.engine_client.canary import CANARY_OUTPUT_TOKENS, CANARY_REQUESTS, canary
from measure.engine_client.http import EndpointError
from measure.engine_client.metrics import counters_between, scrape
from measure.engine_client.open_loop import LlmLiveError, Schedule, Sent, open_loop, saturation_rate
from measure.engine_client.prefix_prompts import PrefixPromptError, prefix_prompt
from measure.engine_client.session import EngineRequest, calibrate, check_request, engine_info
from measure.run import ParamScalar, Run, RunFileError, check_output_dir, load_run
from measure.run.datafile import one_line
from planner.evidence.llm_validation import (
    P50_TARGET_PCT,
    P99_TARGET_PCT,
    TARGET_UP_TO_LOAD,
    CanaryReading,
    EngineKnobs,
    LlmLevel,
    LlmValidation,
    drift_flags,
    load_llm_validation,
    save_llm_validation,
    verdict,
)
from planner.evidence.validation import ValidationFileError, cpu_count
from planner.llm.engine import EngineConfig, EngineError, kv_blocks_from_run
from planner.llm.simulation import llm_requests
from planner.llm.steps import StepModel, StepModelError, step_model
from planner.llm.validate import (
    LevelTraffic,
    LlmValidationError,
    Observed,
    level_traffic,
    predict_level,
    recheck,
)
from planner.traffic.scenario import Scenario, ScenarioError, load_scenario
from planner.workers import load_run_cached

MIX_REQUESTS = 400

CANARY_PROMPT_TOKENS = 64  # the canary: a short prompt, one stream, before every level and after the last


@dataclass(frozen=True)
class LlmValidateArgs:
    """`fleetwise validate` options that matter for an LLM run."""

    run: Path
    precision: str | None
    scenario: Path
    loads: list[float]
    seconds: float
    out_dir: Path
    as_json: bool
    endpoint: str | None
    model: str | None
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    block_size: int
    kv_blocks: int | None
    knobs_source: str
    saturation_concurrency: int
    saturation_seconds: float
    max_in_flight: int
    timeout_s: float
    engine_params: dict[str, ParamScalar]
    prefix_caching: bool = False


def _prepare(a: LlmValidateArgs) -> tuple[Run, str, Scenario, StepModel, EngineConfig]:
    if a.endpoint is None or a.model is None:
        raise EndpointError(
            "an LLM run is validated against a live engine: give --endpoint URL and --model NAME"
        )
    r = load_run_cached(str(a.run))
    have = sorted({p.precision for p in r.points if p.phase is not None and p.latency_ms})
    prec = a.precision or (have[0] if len(have) == 1 else "")
    if prec not in have:
        raise ScenarioError(f"--precision: the run has LLM points at {', '.join(have)}; name one")
    sc = load_scenario(a.scenario)
    if sc.llm is None:
        raise ScenarioError(f"scenario {sc.name} has no llm block: an LLM validation needs token lengths")
    model = step_model(r, prec)
    blocks, _ = kv_blocks_from_run(r, prec, a.block_size, a.kv_blocks)
    cfg = EngineConfig(
        a.max_num_seqs,
        a.max_num_batched_tokens,
        a.chunked_prefill,
        a.block_size,
        blocks,
        prefix_caching=a.prefix_caching,
    )
    if not 10 <= a.seconds <= 3600:
        raise ScenarioError(f"--seconds must be in 10..3600 for an LLM validation, got {a.seconds:g}")
    if not 1 <= a.saturation_concurrency <= 512 or not 5 <= a.saturation_seconds <= 3600:
        raise ScenarioError("--saturation-concurrency in 1..512 and --saturation-seconds in 5..3600")
    if not 1 <= a.max_in_flight <= 512:
        raise ScenarioError(f"--max-in-flight must be in 1..512, got {a.max_in_flight}")
    return r, prec, sc, model, cfg


def _words(tokens: np.ndarray, per_word: float, offset: float) -> np.ndarray:
    return np.maximum(1, np.rint((tokens - offset) / per_word)).astype(np.int64)


def validate_llm(a: LlmValidateArgs) -> None:
    """Measure the sustainable rate, run every load level live, simulate the same traffic, write the file."""
    try:
        r, prec, sc, model, cfg = _prepare(a)
        req = EngineRequest(
            url=a.endpoint or "", model=a.model or "", timeout_s=a.timeout_s, params=a.engine_params
        )
        ep = check_request(req)
        check_output_dir(a.out_dir)  # before minutes of live traffic, not after
        info = engine_info(ep, req)
        per_word, offset = calibrate(ep, req)
        mix, _, notes = llm_requests(sc, MIX_REQUESTS)
        for p, o in zip(mix.prompt.tolist(), mix.output.tolist(), strict=True):
            why = cfg.check(p, o)
            if why:
                raise EngineError(why)
    except (ScenarioError, RunFileError, EndpointError, EngineError, StepModelError, ValueError) as exc:
        raise fail(str(exc)) from None
    say = (lambda m: None) if a.as_json else (lambda m: err.print(escape(m), highlight=False))
    say(
        f"saturation probe: {a.saturation_concurrency} streams closed-loop for {a.saturation_seconds:g} s ..."
    )
    try:
        sat, counted, how = saturation_rate(
            ep,
            req.model,
            _words(mix.prompt, per_word, offset),
            mix.output,
            a.saturation_concurrency,
            a.saturation_seconds,
            a.timeout_s,
            seed=50_000,
        )
    except LlmLiveError as exc:
        raise fail(str(exc)) from None
    try:  # every level's traffic drawn and checked before any is sent
        traffic = level_traffic(sc, cfg, sat, a.loads, a.seconds)
    except LlmValidationError as exc:
        raise fail(str(exc)) from None
    try:
        plans = [(t, _schedule(t, per_word, offset)) for t in traffic]
    except (PrefixPromptError, LlmLiveError) as exc:
        raise fail(str(exc)) from None
    prefixed = traffic[0].requests.prefix_ids is not None
    if prefixed:
        notes.append(
            f"prompts sent as token ids built from the trace's prefix blocks ({traffic[0].requests.prefix_block_tokens} "
            "tokens an id; each level's blocks salted apart, so no level hits what an earlier one left cached)"
        )
    if a.prefix_caching and not prefixed:
        notes.append(
            "prefix caching on, but the scenario names no prefixes: every prompt is its own (nothing is shared)"
        )
    levels: list[LlmLevel] = []
    readings: list[CanaryReading] = []
    canary_words = int(_words(np.array([CANARY_PROMPT_TOKENS]), per_word, offset)[0])

    def read_canary(before: float | None) -> None:
        c = canary(ep, req.model, canary_words, a.timeout_s, seed=90_000 + 100 * len(readings))
        readings.append(
            CanaryReading(
                before_load=before,
                tpot_mean_ms=c.tpot_mean_ms,
                tpot_ci_half_ms=c.tpot_ci_half_ms,
                ttft_median_ms=c.ttft_median_ms,
                requests=c.requests,
                failed=c.failed,
            )
        )

    interrupted = False
    try:
        with sigterm_as_interrupt():  # kill or Ctrl-C: the finished levels are kept and saved
            for t, sched in plans:
                raise_if_interrupted()
                read_canary(t.load)
                say(
                    f"load {t.load:g}: {t.rate_rps:.3g} req/s, {sched.send_s.size} requests over "
                    f"{sched.send_s[-1]:.0f} s ..."
                )
                before, read_at = scrape(ep), time.perf_counter()
                sent, start = open_loop(ep, req.model, sched, a.timeout_s, a.max_in_flight)
                la = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
                after = scrape(ep)
                counters = counters_between(
                    before, after, int(sched.send_s.size), time.perf_counter() - read_at
                )
                seen = _observed(sched, sent, start, t.requests.prompt)
                levels.append(
                    predict_level(
                        t.load,
                        t.rate_rps,
                        sched.send_s,
                        seen,
                        model,
                        cfg,
                        sc.seed,
                        sc.warmup_fraction,
                        la,
                        cpu_count(),
                        counters,
                        t.requests.prefix_ids,
                        t.requests.prefix_block_tokens,
                        t.seed if t.requests.prefix_ids is not None else None,
                    )
                )
            read_canary(None)
    except KeyboardInterrupt:
        interrupted = True
    except (EngineError, ValueError) as exc:  # a level's replay refused: the levels before it are kept
        if not levels:
            raise fail(str(exc)) from None
        notes.append(f"stopped after {len(levels)} of {len(plans)} levels: {one_line(str(exc), 300)}")
    if interrupted and not levels:
        err.print("interrupted before any load level finished; nothing to save", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    if interrupted:
        notes.append(f"interrupted after {len(levels)} of {len(plans)} load levels (the rest never ran)")
    for i, why in enumerate(drift_flags(readings)[: len(levels)]):
        if why is not None:  # measured while the engine moved: kept and reported, not judged
            lv = levels[i]
            levels[i] = lv.model_copy(update={"drift": why, "diagnosis": [*lv.diagnosis, why]})
    try:
        v = LlmValidation(
            run_id=r.id,
            precision=prec,
            scenario=sc.name,
            lengths=f"prompt and output tokens drawn from scenario {sc.name}"
            + (f" (scaled by {sc.llm.scale:g})" if sc.llm and sc.llm.scale != 1.0 else "")
            + (
                "; prompts sent as token ids, their blocks as the trace names them"
                if prefixed
                else f"; prompts sent as {per_word:.3g} tokens per word + {offset:.3g}, calibrated on the engine's "
                "usage"
            ),
            engine=info,
            knobs=EngineKnobs(
                max_num_seqs=cfg.max_num_seqs,
                max_num_batched_tokens=cfg.max_num_batched_tokens,
                chunked_prefill=cfg.chunked_prefill,
                block_size=cfg.block_size,
                kv_blocks=cfg.kv_blocks,
                source=a.knobs_source,
            ),
            sustainable_rps=sat,
            sustainable_method=f"measured: {counted} requests of the scenario's mix completed closed-loop at "
            f"{a.saturation_concurrency} concurrent streams after warm-up ({how})",
            seconds=a.seconds,
            warmup_fraction=sc.warmup_fraction,
            created_at=datetime.now(UTC),
            client=f"{platform.node()[:100]} ({platform.machine()}), Python {platform.python_version()}",
            cpu_count=cpu_count(),
            notes=[*dict.fromkeys(notes), *model.notes],
            targets=f"|p50 error| <= {P50_TARGET_PCT:g}% and |p99 error| <= {P99_TARGET_PCT:g}% for TTFT, TPOT and E2E "
            f"at loads up to {TARGET_UP_TO_LOAD:g}; above that reported, not judged",
            levels=levels,
            verdict=verdict(levels),
            canary=f"{CANARY_REQUESTS} requests one at a time, {CANARY_PROMPT_TOKENS} prompt and "
            f"{CANARY_OUTPUT_TOKENS} output tokens, before every level and after the last",
            canaries=readings,
            prefix_caching=a.prefix_caching,
        )
    except ValueError as exc:  # a reading no file may hold (pydantic): one line, not a traceback
        raise fail(f"the measured levels cannot be stored: {exc}") from None
    path = save_or_fallback(lambda d: save_llm_validation(v, d), a.out_dir, "validation file")
    if a.as_json:
        write_json(v.model_dump(mode="json"))
    else:
        print_llm_validation(v)
        out.print(escape(f"written: {path}"), highlight=False, soft_wrap=True)
    if interrupted:
        err.print(f"interrupted: saved the {len(levels)} finished load levels", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)


def _schedule(t: LevelTraffic, per_word: float, offset: float) -> Schedule:
    """What the open loop sends for a level: word prompts of about the scenario's lengths or, for a trace with
    prefix blocks, token-id prompts of exactly its lengths, sharing exactly the blocks it names."""
    rq = t.requests
    words = _words(rq.prompt, per_word, offset)
    tokens = None
    if rq.prefix_ids is not None:
        tokens = tuple(
            prefix_prompt(ids, rq.prefix_block_tokens, int(p), t.seed, t.seed + i)
            for i, (ids, p) in enumerate(zip(rq.prefix_ids, rq.prompt.tolist(), strict=True))
        )
    return Schedule(rq.arrival_s, words, rq.output, seed=t.seed, token_prompts=tokens)


def _observed(sched: Schedule, sent: list[Sent], start: float, prompts_drawn: np.ndarray) -> Observed:
    """What the engine did with each scheduled request, as arrays the prediction reads."""
    n = sched.send_s.size
    first = np.full(n, np.nan)
    last = np.full(n, np.nan)
    tokens = np.zeros(n, dtype=np.int64)
    late = np.zeros(n)
    failures: list[str | None] = []
    early = 0
    prompts = prompts_drawn.copy()
    for i, s in enumerate(sent):
        res = s.result
        late[i] = s.late_ms
        ok = res.error is None and res.token_times
        why = res.error or "no token streamed"
        if ok and len(res.token_times) > sched.max_tokens[i]:  # not the request asked for: not its figures
            ok = False
            why = f"streamed {len(res.token_times)} text chunks for max_tokens {sched.max_tokens[i]}"
        failures.append(None if ok else why)
        if res.prompt_tokens:
            prompts[i] = res.prompt_tokens  # the engine's own count of what it prefilled
        if ok:
            first[i], last[i] = res.token_times[0] - start, res.token_times[-1] - start
            tokens[i] = len(res.token_times)
            early += int(tokens[i] < sched.max_tokens[i])
    # the prediction replays what each request really was: its prompt and the tokens it produced (asked, if none)
    return Observed(
        first, last, tokens, late, failures, early, prompts, np.where(tokens > 0, tokens, sched.max_tokens)
    )


def recheck_llm(path: Path, run_path: Path, out_dir: Path, as_json: bool, calibrated: bool = False) -> None:
    """Re-predict every level of a validation file from the live traffic it recorded, with the current engine
    model and the file's knobs; the measurements are the file's own, nothing is sent."""
    try:
        old = load_llm_validation(path)
        r = load_run(run_path)
        check_output_dir(out_dir)
        v = recheck(old, r, path.name, calibrated)
    except (ValidationFileError, RunFileError, StepModelError, EngineError, ValueError) as exc:
        raise fail(str(exc)) from None

    written = save_or_fallback(lambda d: save_llm_validation(v, d), out_dir, "validation file")
    if as_json:
        write_json(v.model_dump(mode="json"))
        return
    print_llm_validation(v)
    out.print(escape(f"written: {written}"), highlight=False, soft_wrap=True)
