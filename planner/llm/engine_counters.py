"""The engine model against the engine's own counters: for every setting of an engine run whose /metrics were
read, the same closed loop (its concurrency, its requests, prompt and output lengths) replayed through the
engine model, and the steps it takes and tokens a step carries compared with what the engine counted.

A step count that differs says the model batches differently from the engine (a mean decode batch of 3.6 where
the model runs 4, say), whatever the step times; that is a cause the latency errors alone cannot name. The
engine counts tokens per step as prompt + generated tokens (its iteration_tokens_total), and so does this
comparison.

Counters read over a setting's steady window (run schema 7, `seconds` kept) are compared over a window of the
same length in the replay, opened as the model's warm-up ends (its c-th completion): steps a second and
generated tokens a step. Older counters cover the whole setting and are compared with the whole replay.
"""

from __future__ import annotations

import numpy as np

from measure.run import Run
from measure.run.types import ResultModel
from planner.llm.engine import EngineConfig, Trace, replay_closed_loop
from planner.llm.steps import step_model


class CounterCheck(ResultModel):
    """One setting: what the engine counted and what the engine model did with the same closed loop."""

    prompt_tokens: int
    concurrency: int
    requests: int
    engine_steps: float
    simulated_steps: int
    steps_error_pct: float
    engine_mean_batch: float | None  # generated tokens / steps: sequences a step served, on average
    simulated_mean_batch: float
    engine_preemptions: float | None
    window_s: float | None = None  # the steady window both were counted over; None: the whole setting


def _window_counts(tr: Trace, c: int, seconds: float) -> tuple[int, int] | None:
    """Steps begun and tokens generated in the replay within `seconds` from its c-th completion; None when
    the replay ends before the window does."""
    finish = np.sort(tr.finish_s)
    if finish.size <= c:
        return None
    t0 = float(finish[c - 1])
    t1 = t0 + seconds
    if t1 > float(finish[-1]):
        return None
    starts = np.asarray(tr.step_starts)
    steps = int(np.count_nonzero((starts >= t0) & (starts < t1)))
    who = np.asarray(tr.itl_request, dtype=np.int64)
    order = np.argsort(who, kind="stable")  # a request's gaps are in its own order
    who_s, gap_s = who[order], np.asarray(tr.itl_ms, dtype=np.float64)[order] / 1000.0
    cum = np.cumsum(gap_s)
    first = np.r_[0, np.flatnonzero(np.diff(who_s)) + 1]
    before = np.repeat(np.r_[0.0, cum][first], np.diff(np.r_[first, who_s.size]))
    times = np.concatenate([tr.first_s, tr.first_s[who_s] + cum - before])
    return steps, int(np.count_nonzero((times >= t0) & (times < t1)))


def check_counters(run: Run, precision: str, cfg: EngineConfig, seed: int = 0) -> list[CounterCheck]:
    """Every engine setting with counters, replayed; empty when the run read none."""
    model = step_model(run, precision)
    seen: set[tuple[int, int]] = set()
    out: list[CounterCheck] = []
    for p in run.points:
        e = p.engine
        c = e.counters if e is not None else None
        if e is None or c is None or c.steps is None or not c.steps or p.precision != precision:
            continue
        key = (e.prompt_tokens, e.concurrency)
        if key in seen:  # the prefill and decode points of one setting share its counters
            continue
        seen.add(key)
        prompt = e.prompt_tokens_reported or e.prompt_tokens
        seconds = c.seconds if c.seconds else None
        # a window: its requests, the warm-up and those in flight at both edges; a model faster than the
        # engine fits more requests in the same seconds, so the replay grows until it covers the window
        n = c.requests_sent + 4 * e.concurrency if seconds else c.requests_sent
        for _ in range(5):
            tr = replay_closed_loop(
                model, cfg, prompt, e.output_tokens, n, e.concurrency, seed, record_starts=seconds is not None
            )
            got = _window_counts(tr, e.concurrency, seconds) if seconds else None
            if seconds is None or got is not None:
                break
            n *= 4
        steps, generated = got if got is not None else (tr.steps, n * e.output_tokens)
        out.append(
            CounterCheck(
                prompt_tokens=prompt,
                concurrency=e.concurrency,
                requests=c.requests_sent,
                engine_steps=c.steps,
                simulated_steps=steps,
                steps_error_pct=(steps - c.steps) / c.steps * 100.0,
                engine_mean_batch=c.generation_tokens / c.steps if c.generation_tokens is not None else None,
                simulated_mean_batch=generated / steps if steps else 0.0,
                engine_preemptions=c.preemptions,
                window_s=c.seconds if got is not None else None,
            )
        )
    return out
