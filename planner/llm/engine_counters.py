"""The engine model against the engine's own counters: for every setting of an engine run whose /metrics were
read, the same closed loop (its concurrency, its requests, prompt and output lengths) replayed through the
engine model, and the steps it takes and tokens a step carries compared with what the engine counted.

A step count that differs says the model batches differently from the engine (a mean decode batch of 3.6 where
the model runs 4, say), whatever the step times; that is a cause the latency errors alone cannot name. The
engine counts tokens per step as prompt + generated tokens (its iteration_tokens_total), and so does this
comparison.
"""

from __future__ import annotations

import numpy as np

from measure.run import Run
from measure.run.types import ResultModel
from planner.llm.engine import EngineConfig, LlmRequests, simulate
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
        n = c.requests_sent
        prompt = e.prompt_tokens_reported or e.prompt_tokens
        reqs = LlmRequests(
            np.zeros(n), np.full(n, prompt, dtype=np.int64), np.full(n, e.output_tokens, dtype=np.int64)
        )
        tr = simulate(reqs, model, cfg, 1, "round-robin", seed=seed, concurrency=e.concurrency)
        generated = n * e.output_tokens
        out.append(
            CounterCheck(
                prompt_tokens=prompt,
                concurrency=e.concurrency,
                requests=n,
                engine_steps=c.steps,
                simulated_steps=tr.steps,
                steps_error_pct=(tr.steps - c.steps) / c.steps * 100.0,
                engine_mean_batch=c.generation_tokens / c.steps if c.generation_tokens is not None else None,
                simulated_mean_batch=generated / tr.steps if tr.steps else 0.0,
                engine_preemptions=c.preemptions,
            )
        )
    return out
