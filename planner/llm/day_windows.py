"""What both kinds of LLM day (planner/llm/day.py, planner/llm/day_autoscaled.py) simulate: a steady hour as a
scenario, and a window of requests that opens on the hour before's rate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from planner.llm.engine import LlmRequests, Trace
from planner.llm.simulation import llm_requests, meets_slos
from planner.traffic.scenario import Poisson, Scenario
from planner.traffic.sessions import synthetic_prefixes

LEAD_S = 60.0  # the hour before's traffic ahead of a ramp, so the window opens on busy replicas


class DayError(ValueError):
    """A scenario or policy a day cannot be planned for, in one line."""


def steady(sc: Scenario, rate: float, requests: int) -> Scenario:
    """The scenario as a steady Poisson stream of `requests` at `rate` (one hour of a day)."""
    return sc.model_copy(
        update={
            "arrivals": Poisson(process="poisson", rate_rps=rate),
            "requests": requests,
            "duration_s": None,
            "growth": 1.0,
        }
    )


def window_requests(
    sc: Scenario, before_rps: float, rate_rps: float, window_s: float, seed: int
) -> tuple[np.ndarray, LlmRequests]:
    """Poisson arrivals: LEAD_S s at the hour before's rate, then `window_s` s at the new one (from LEAD_S); the
    scenario's lengths for them."""
    segments = ((0.0, before_rps, LEAD_S), (LEAD_S, rate_rps, window_s))
    t = poisson_segments(np.random.default_rng(seed), segments)
    return t, requests_at(sc, t, rate_rps or before_rps, seed)


def poisson_segments(
    rng: np.random.Generator,
    segments: Sequence[tuple[float, float, float]],
    over: float = 1.5,
    extra: int = 10,
) -> np.ndarray:
    """Poisson arrival times over consecutive (start s, rate req/s, span s) segments: each draws
    rate x span x `over` + `extra` gaps (enough to pass its end) and keeps those before it; a rate of 0 draws
    none."""
    parts = []
    for start, rate, span in segments:
        if rate > 0:
            t = start + np.cumsum(rng.exponential(1.0 / rate, int(rate * span * over) + extra))
            parts.append(t[t < start + span])
    return np.concatenate(parts) if parts else np.zeros(0)


def requests_at(sc: Scenario, t: np.ndarray, rate_rps: float, seed: int) -> LlmRequests:
    """The scenario's lengths for arrivals `t` (drawn as at a steady `rate_rps`) and, where it states shared
    prefixes (`llm.prefix`), its system prompts and sessions dealt over these very arrivals."""
    n = int(t.size)
    if n == 0:
        return LlmRequests(t, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    llm = sc.llm
    assert llm is not None  # a day plans generative traffic
    plain = (
        sc if llm.prefix is None else sc.model_copy(update={"llm": llm.model_copy(update={"prefix": None})})
    )
    lengths, _, _ = llm_requests(steady(plain, rate_rps, n), n, seed=seed)
    if llm.prefix is None:
        return LlmRequests(t, lengths.prompt, lengths.output)
    prompt, ids, block, _ = synthetic_prefixes(
        llm.prefix, t, lengths.prompt, lengths.output, np.random.default_rng(seed + 1), llm.scale
    )
    return LlmRequests(t, prompt, lengths.output, ids, block)


def over_slo(sc: Scenario, sent: np.ndarray, tr: Trace, output: np.ndarray) -> np.ndarray:
    """Per request, whether it went over a latency SLO's threshold (TTFT, TPOT or E2E), timed from `sent`."""
    ttft, e2e = tr.first_s - sent, tr.finish_s - sent
    tpot = np.where(output > 1, (e2e - ttft) / np.maximum(output - 1, 1), 0.0)
    return ~meets_slos(sc.slo, ttft, e2e, tpot)
