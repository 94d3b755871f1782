"""A canary for live checks: one small fixed setting (one stream at a time, a short prompt, a few requests)
measured before every load level and after the last, so a level measured while the engine or the machine
drifted (thermal, another tenant, a background job) is seen rather than blamed on the model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from measure.core.stats import mean_ci_halfwidth
from measure.engine_client.http import Endpoint, prompt_text, stream_completion

CANARY_REQUESTS = 12
CANARY_OUTPUT_TOKENS = 16


@dataclass(frozen=True)
class CanaryResult:
    """The canary's reading: mean per-request TPOT with its 95% CI half-width, median TTFT, how many counted."""

    tpot_mean_ms: float | None
    tpot_ci_half_ms: float | None
    ttft_median_ms: float | None
    requests: int
    failed: int


def canary(ep: Endpoint, model: str, words: int, timeout_s: float, seed: int) -> CanaryResult:
    """CANARY_REQUESTS streams one after another, each a fresh prompt of `words` words (no prefix reuse)."""
    tpots, ttfts, failed = [], [], 0
    for i in range(CANARY_REQUESTS):
        r = stream_completion(ep, model, prompt_text(words, seed + i), CANARY_OUTPUT_TOKENS, timeout_s)
        if r.error is not None or r.tpot_ms is None or r.ttft_ms is None:
            failed += 1
            continue
        tpots.append(r.tpot_ms)
        ttfts.append(r.ttft_ms)
    if len(tpots) < 3:
        return CanaryResult(None, None, None, len(tpots), failed)
    return CanaryResult(
        float(np.mean(tpots)), float(mean_ci_halfwidth(tpots)), float(np.median(ttfts)), len(tpots), failed
    )
