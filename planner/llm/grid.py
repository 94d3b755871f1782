"""An engine sweep's prompt lengths chosen from the traffic it is measured for, so that the engine model's
steps under that traffic fall inside the measured grid instead of being timed at its edge.

The grid is the scenario's shortest prompt less half the sweep's output, its 10th, 50th and 90th percentile
prompt, and its longest prompt + output. A decode point of prompt P sits at context P + output/2, so the first
puts the smallest measured context at or below the shortest prompt (every decode context of the traffic is at
or above it) and every prefill above the smallest measured one; the last holds the longest request's every
prompt and context. The first is rounded down and the rest up to a multiple of 16 (the KV block of the model),
at least 16, and deduplicated; a traffic whose shortest prompt is under 16 + output/2 tokens has decode steps
below the grid, as few as its share of such prompts.
"""

from __future__ import annotations

import math

import numpy as np

from planner.llm.simulation import llm_requests
from planner.traffic.scenario import Scenario, ScenarioError

QUANTILES = (0.1, 0.5, 0.9)
ROUND = 16
MAX_GRID_PROMPT = 1_048_576


def prompts_for(sc: Scenario, output_tokens: int = 32, requests: int = 2000) -> list[int]:
    """Prompt lengths for an engine sweep of the scenario's traffic with `output_tokens` a request (see the
    module's docstring)."""
    if sc.llm is None:
        raise ScenarioError(f"scenario {sc.name} has no llm block: it has no prompt lengths to choose from")
    reqs, _, _ = llm_requests(sc, requests)
    prompt, longest = reqs.prompt.astype(np.float64), float((reqs.prompt + reqs.output).max())
    shortest = ROUND * math.floor((float(prompt.min()) - output_tokens / 2) / ROUND)
    picks = [float(np.quantile(prompt, q)) for q in QUANTILES] + [longest]
    grid = {min(MAX_GRID_PROMPT, max(ROUND, ROUND * math.ceil(x / ROUND))) for x in picks}
    return sorted(grid | {min(MAX_GRID_PROMPT, max(ROUND, shortest))})
