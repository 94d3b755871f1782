"""An assumed LLM profile against a measured LLM run of the same model and device: its error at every measured
step, so the docs and the report can say how far a roofline is from what an engine does.

Compared per measured point at the profile's precision: prefill (batch x prompt tokens, from scratch) and
decode (batch at context). The measured figure is the point's median step time; for an engine run the decode
point is the inter-token gap and the prefill point the TTFT, which hold the engine's and the client's own time
(the roofline has none of it: the error says so rather than hiding it). Error = (roofline - measured) /
measured.
"""

from __future__ import annotations

import numpy as np

from measure.run import Run
from measure.run.types import ResultModel
from planner.llm.roofline import LlmProfile, decode_ms, prefill_ms


class StepError(ResultModel):
    """One measured step against the roofline."""

    phase: str
    batch: int
    tokens: int  # prefill: prompt tokens; decode: context
    measured_ms: float
    roofline_ms: float
    error_pct: float


class ProfileError(ResultModel):
    """Every comparable step of one run, and the median error per phase."""

    profile: str
    run_id: str
    source: str  # in-process or engine
    steps: list[StepError]
    median_error_pct: dict[str, float]


def profile_error(p: LlmProfile, run: Run) -> ProfileError:
    """The roofline's error at every measured prefill and decode point of the run at the profile's precision."""
    steps: list[StepError] = []
    for pt in run.points:
        if pt.precision != p.precision or pt.latency_ms is None or pt.phase not in ("prefill", "decode"):
            continue
        if pt.cached_tokens is not None:  # behind a cached prefix: not a prefill the roofline models
            continue
        if pt.phase == "prefill" and pt.seq_len:
            tokens, predicted = pt.seq_len, prefill_ms(p, pt.batch_size * pt.seq_len)
        elif pt.phase == "decode" and pt.context_tokens:
            tokens, predicted = pt.context_tokens, decode_ms(p, pt.batch_size, pt.context_tokens)
        else:
            continue
        measured = float(pt.latency_ms.median)
        steps.append(
            StepError(
                phase=pt.phase,
                batch=pt.batch_size,
                tokens=tokens,
                measured_ms=measured,
                roofline_ms=predicted,
                error_pct=(predicted - measured) / measured * 100.0,
            )
        )
    medians = {
        ph: float(np.median([s.error_pct for s in steps if s.phase == ph]))
        for ph in ("prefill", "decode")
        if any(s.phase == ph for s in steps)
    }
    source = "engine" if any(pt.source == "engine" for pt in run.points) else "in-process"
    return ProfileError(profile=p.name, run_id=run.id, source=source, steps=steps, median_error_pct=medians)
