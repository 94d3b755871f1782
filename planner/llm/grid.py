"""An engine sweep's prompt lengths chosen from the traffic it is measured for, so that the engine model's
steps under that traffic fall inside the measured grid instead of being timed at its edge.

The grid is the scenario's 10th, 50th and 90th percentile prompt and its longest prompt + output: a decode point
of prompt P sits at context P + output/2, so the longest request's every context and every prompt are within
the grid. Lengths are rounded up to a multiple of 16 (the KV block of the model) and deduplicated.
"""

from __future__ import annotations

import math

import numpy as np

from planner.llm.simulation import llm_requests
from planner.traffic.scenario import Scenario, ScenarioError

QUANTILES = (0.1, 0.5, 0.9)
ROUND = 16
MAX_GRID_PROMPT = 1_048_576


def prompts_for(sc: Scenario, requests: int = 2000) -> list[int]:
    """Prompt lengths for an engine sweep of the scenario's traffic (see the module's docstring)."""
    if sc.llm is None:
        raise ScenarioError(f"scenario {sc.name} has no llm block: it has no prompt lengths to choose from")
    reqs, _, _ = llm_requests(sc, requests)
    prompt, longest = reqs.prompt.astype(np.float64), float((reqs.prompt + reqs.output).max())
    picks = [float(np.quantile(prompt, q)) for q in QUANTILES] + [longest]
    grid = sorted({min(MAX_GRID_PROMPT, max(ROUND, ROUND * math.ceil(x / ROUND))) for x in picks})
    return grid
