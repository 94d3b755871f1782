"""Step times of an engine run calibrated by simulation: the engine model replays each measured closed-loop
setting (its concurrency, prompt and output lengths, requests) and each decode step time is scaled until the
simulated median inter-token gap equals the measured one.

Why: at concurrency c the gaps a client sees are not decode steps of batch c. Other streams' prompts ride in
some of those steps, a stream's neighbours start and end at other times, and the client's round trip leaves the
engine short of c streams now and then. A heuristic once guessed which share of the gaps were pure decode
(e^-(c-1)/output); here the engine model itself, with the prefill cost it already charges a chunk, decides what
a step must cost for the closed loop to come out as measured. The iteration is a fixed point on the medians:
each round multiplies the decode median at (context, c) by measured / simulated gap median, rebuilds the
interpolation and replays every setting again, until every ratio is within the tolerance (or the rounds end).

What it leaves alone: the shape of each decode point's spread is the one engine_steps.py gives it (the
concurrency-1 gaps' where the engine's counters were read over the steady window; else the fastest
e^-(c-1)/output gaps), only its median is fitted. With the raw gaps' spread instead, whose tail holds the steps
that carried a prompt, the simulator charges those prompts twice (once in the tail, once as the chunk's cost): on
the shipped transformers-serve validation that predicted TPOT 2-4x too high from load 0.5. TTFT's split (engine
vs client time) is the linear fit of engine_steps.py. Residuals per setting are reported, median and p99 of the gaps,
and TTFT at c = 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.interpolate import PchipInterpolator

from measure.run import Run
from measure.run.types import ResultModel
from planner.llm.engine import EngineConfig, replay_closed_loop
from planner.llm.steps import Curve, StepModel, StepModelError, step_model

ROUNDS = 8
TOLERANCE = 0.01  # a 1% median gap is within the noise of one closed-loop setting's median
MIN_REQUESTS = 24  # per setting, replayed (the measured count when larger), after c warm-up requests


class SettingFit(ResultModel):
    """One closed-loop setting after calibration: measured, simulated, and their relative error."""

    prompt_tokens: int
    concurrency: int
    requests: int
    gap_median_ms: float
    simulated_gap_median_ms: float
    gap_median_error_pct: float
    gap_p99_ms: float
    simulated_gap_p99_ms: float
    gap_p99_error_pct: float
    ttft_median_ms: float | None = None
    simulated_ttft_median_ms: float | None = None


class Calibration(ResultModel):
    """What calibration did: rounds, whether it converged, and each setting's residuals."""

    run_id: str
    precision: str
    rounds: int
    converged: bool
    settings: list[SettingFit]
    notes: list[str]


class Setting(NamedTuple):
    """One measured closed-loop setting, as the calibration replays it."""

    prompt: int
    context: int  # the decode point's context key
    concurrency: int
    output: int
    requests: int
    gap_median_ms: float
    gap_p99_ms: float
    ttft_median_ms: float | None


def _settings(run: Run, precision: str) -> list[Setting]:
    """Every engine decode setting at the precision, with its TTFT median at concurrency 1."""
    ttft = {
        p.engine.prompt_tokens: p.latency_ms.median
        for p in run.points
        if p.phase == "prefill"
        and p.cached_tokens is None
        and p.engine is not None
        and p.latency_ms is not None
        and p.precision == precision
    }
    out = []
    for p in run.points:
        e = p.engine
        if p.phase != "decode" or e is None or p.latency_ms is None or p.context_tokens is None:
            continue
        if p.precision != precision or p.status == "failed":
            continue
        prompt = e.prompt_tokens_reported or e.prompt_tokens
        out.append(
            Setting(
                prompt,
                p.context_tokens,
                e.concurrency,
                e.output_tokens,
                max(MIN_REQUESTS, e.requests),
                float(p.latency_ms.median),
                float(np.percentile(np.asarray(p.raw_latencies_ms), 99)),
                ttft.get(e.prompt_tokens) if e.concurrency == 1 else None,
            )
        )
    return out


def _replay(
    model: StepModel, cfg: EngineConfig, prompt: int, c: int, output: int, n: int, seed: int
) -> tuple[np.ndarray, float]:
    """The gaps and median TTFT of the requests in the replay's steady window, as measured: sent after the
    c-th completion (the warm-up) and ended by the last send; the replay holds enough requests for n of them."""
    m = n + 3 * c
    tr = replay_closed_loop(model, cfg, prompt, output, m, c, seed)
    sent = tr.sent_s if tr.sent_s is not None else np.zeros(m)  # a closed loop always records it
    opened, closed = float(np.sort(tr.finish_s)[c - 1]), float(np.max(sent))
    steady = (sent >= opened) & (tr.finish_s <= closed)
    if not steady.any():  # too few requests to open and close a window: all after the warm-up
        steady = np.arange(m) >= c
    who = np.asarray(tr.itl_request, dtype=np.int64)
    gaps = np.asarray(tr.itl_ms, dtype=np.float64)[steady[who]]
    ttft = (tr.first_s - sent)[steady] * 1000.0
    return gaps, float(np.median(ttft))


def _scale(curve: Curve, batch: int, ratio: float) -> None:
    """Multiply the curve's median at `batch` (a measured x) by ratio; keep it non-decreasing; refit."""
    i = int(np.argmin(np.abs(curve.xs - batch)))
    curve.medians[i] *= ratio
    curve.medians[:] = np.maximum.accumulate(curve.medians)
    curve._f = PchipInterpolator(np.log(curve.xs), np.log(curve.medians)) if curve.xs.size > 1 else None


def calibrate(run: Run, precision: str, cfg: EngineConfig, seed: int = 0) -> tuple[StepModel, Calibration]:
    """The run's step model with decode medians fitted by replaying its closed loops; and the residuals."""
    model = step_model(run, precision)
    settings = _settings(run, precision)
    if not settings:
        raise StepModelError(
            f"run {run.short_id()} has no engine decode settings at {precision} to calibrate on"
        )
    converged, rounds = False, 0
    while rounds < ROUNDS and not converged:
        rounds += 1
        worst = 0.0
        for k, st in enumerate(settings):
            sim, _ = _replay(model, cfg, st.prompt, st.concurrency, st.output, st.requests, seed + k)
            ratio = st.gap_median_ms / float(np.median(sim))
            worst = max(worst, abs(ratio - 1))
            _scale(model.decode[st.context], st.concurrency, ratio)
            model._cache.clear()
        converged = worst < TOLERANCE
    fits = []
    for k, (prompt, _ctx, c, output, n, gap, p99, ttft) in enumerate(settings):
        sim, sim_ttft = _replay(model, cfg, prompt, c, output, n, seed + k)
        sm, s99 = float(np.median(sim)), float(np.percentile(sim, 99))
        fits.append(
            SettingFit(
                prompt_tokens=prompt,
                concurrency=c,
                requests=n,
                gap_median_ms=gap,
                simulated_gap_median_ms=sm,
                gap_median_error_pct=(sm - gap) / gap * 100,
                gap_p99_ms=p99,
                simulated_gap_p99_ms=s99,
                gap_p99_error_pct=(s99 - p99) / p99 * 100,
                ttft_median_ms=ttft,
                simulated_ttft_median_ms=sim_ttft if ttft is not None else None,
            )
        )
    model.notes.append(
        f"engine run calibrated by simulation: decode medians fitted so that the engine model replaying each "
        f"measured closed loop gives its median inter-token gap ({rounds} rounds, "
        f"{'converged' if converged else 'not converged'} to {TOLERANCE:.0%})"
    )
    model.source = "engine, calibrated"
    notes = [] if converged else [f"not converged in {ROUNDS} rounds: the residuals say by how much"]
    return model, Calibration(
        run_id=run.id, precision=precision, rounds=rounds, converged=converged, settings=fits, notes=notes
    )
