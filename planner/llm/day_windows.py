"""What both kinds of LLM day (planner/llm/day.py, planner/llm/day_autoscaled.py) simulate: a steady hour as a
scenario, and a window of requests that opens on the hour before's rate."""

from __future__ import annotations

import numpy as np

from planner.llm.engine import LlmRequests, Trace
from planner.llm.simulation import llm_requests, meets_slos
from planner.traffic.scenario import Poisson, Scenario

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
    rng = np.random.default_rng(seed)
    parts = []
    for start, rate, span in ((0.0, before_rps, LEAD_S), (LEAD_S, rate_rps, window_s)):
        if rate > 0:
            gaps = rng.exponential(1.0 / rate, int(rate * span * 1.5) + 10)
            t = start + np.cumsum(gaps)
            parts.append(t[t < start + span])
    t = np.concatenate(parts) if parts else np.zeros(0)
    if t.size == 0:
        return t, LlmRequests(t, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    lengths, _, _ = llm_requests(steady(sc, rate_rps or before_rps, int(t.size)), int(t.size), seed=seed)
    return t, lengths


def over_slo(sc: Scenario, sent: np.ndarray, tr: Trace, output: np.ndarray) -> np.ndarray:
    """Per request, whether it went over a latency SLO's threshold (TTFT, TPOT or E2E), timed from `sent`."""
    ttft, e2e = tr.first_s - sent, tr.finish_s - sent
    tpot = np.where(output > 1, (e2e - ttft) / np.maximum(output - 1, 1), 0.0)
    return ~meets_slos(sc.slo, ttft, e2e, tpot)
