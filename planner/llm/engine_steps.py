"""Step times of a run measured through a serving engine, where the client sees token arrivals, not steps.

Two things a client's timings cannot give apart, and how they are told apart here:
- TTFT at concurrency 1 holds the round trip and tokenisation, one step's fixed cost and the prompt's marginal
  compute. A straight line through the medians, TTFT = a + b x prompt tokens, separates them: b x tokens is what
  a prompt chunk adds to the step it rides in, and a minus the batch-1 decode step is time outside the engine.
- At concurrency c > 1 every gap a stream sees is a step, but some steps also carried another stream's prompt.
  Where the engine's own counters were read over the setting's steady window (run schema 7), they say how
  long the engine's steps took on average (window seconds / steps) and how many prompt tokens they carried
  (prompt tokens / steps): the mean decode step is the mean step less b x those tokens. Its spread is that of
  the concurrency-1 gaps at the same prompt (one stream: every gap a pure decode step), scaled to that mean.
  Without such counters (engines with no /metrics, older runs) the fastest e^-(c-1)/output share of the gaps
  is taken as pure decode, a heuristic the model's notes name.
"""

from __future__ import annotations

import math

import numpy as np

from measure.run import Point

MIN_DECODE_SAMPLES = 20
FLOOR_SHARE = 0.05  # a decode step is never less than this share of the engine's mean step


def samples(p: Point) -> np.ndarray:
    """A point's kept samples, ms."""
    return np.asarray(p.raw_latencies_ms, dtype=np.float64)


def ttft_line(mine: list[Point]) -> tuple[float, float] | str:
    """(intercept ms, slope ms/prompt token) of TTFT at concurrency 1 over the measured prompts, or why none."""
    pts = [
        (float(p.seq_len or 0), float(p.latency_ms.median))
        for p in mine
        if p.phase == "prefill" and p.latency_ms
    ]
    xs = np.array([x for x, _ in pts])
    if len(set(xs.tolist())) < 2:
        return (
            "engine run with one prompt length: TTFT cannot be split into engine and client time; a step with "
            "decode and prefill costs decode + the whole TTFT (pessimistic)"
        )
    slope, intercept = np.polyfit(xs, np.array([y for _, y in pts]), 1)
    if slope <= 0 or intercept <= 0:
        return (
            f"engine run: TTFT does not grow with the prompt in a straight line (fit {intercept:.3g} + "
            f"{slope:.3g} ms/token); a step with decode and prefill costs decode + the whole TTFT (pessimistic)"
        )
    return float(intercept), float(slope)


def _heuristic(p: Point) -> np.ndarray:
    """The fastest e^-(c-1)/output of the gaps: in the closed loop each of the other c - 1 streams starts a
    request every `output_tokens` steps, so a step carries Poisson((c - 1) / output) prompts."""
    x = np.sort(samples(p))
    e = p.engine
    if e is None or e.concurrency <= 1 or not e.output_tokens:
        return x
    keep = max(MIN_DECODE_SAMPLES, int(x.size * math.exp(-(e.concurrency - 1) / e.output_tokens)))
    return x[: min(keep, x.size)]


def from_counters(p: Point, alone: Point | None, slope: float | None) -> np.ndarray | None:
    """Decode step samples of a c > 1 point from its steady-window counters (see the module), or None when
    it has none to give: no windowed counters, no step, no prompt slope, or no concurrency-1 spread."""
    e = p.engine
    c = e.counters if e is not None else None
    if e is None or c is None or c.seconds is None or not c.steps or c.prompt_tokens is None:
        return None
    if slope is None or alone is None or not alone.raw_latencies_ms:
        return None
    step = c.seconds * 1000.0 / c.steps
    decode = max(step - slope * c.prompt_tokens / c.steps, FLOOR_SHARE * step)
    shape = samples(alone)
    return shape * (decode / float(np.mean(shape)))


def decode_samples(p: Point, alone: Point | None, slope: float | None) -> tuple[np.ndarray, bool]:
    """An engine decode point's pure-decode step samples, and False where they are the heuristic share of its
    gaps (no windowed counters): one stream's own gaps and the counters' estimate are measured, not guessed."""
    if p.engine is None or p.engine.concurrency <= 1:
        return samples(p), True  # one stream: every gap is a decode step (its own prefill is TTFT)
    got = from_counters(p, alone, slope)
    return (got, True) if got is not None else (_heuristic(p), False)
