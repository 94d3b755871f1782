"""The engine model against the engine's counters: the same closed loop replayed, steps and batch compared."""

from __future__ import annotations

import pytest

from measure.run import EngineCounters, load_run
from planner.llm.engine import EngineConfig
from planner.llm.engine_counters import check_counters
from tests.conftest import REPO

ENGINE_RUN = REPO / "data" / "runs" / "llm-engine-cpu-20261129T142232Z-be0a55eb155d.json"


def with_counters(requests: int) -> object:
    """The shipped engine run, each setting given counters as an engine at one token a step would count them."""
    run = load_run(ENGINE_RUN)
    points = []
    for p in run.points:
        e = p.engine
        assert e is not None
        steps = (
            requests * e.output_tokens if e.concurrency == 1 else requests * e.output_tokens / e.concurrency
        )
        c = EngineCounters(
            source="test", requests_sent=requests, generation_tokens=requests * e.output_tokens, steps=steps
        )
        points.append(p.model_copy(update={"engine": e.model_copy(update={"counters": c})}))
    return run.model_copy(update={"points": points})


def test_at_concurrency_one_the_model_takes_one_step_a_token_as_the_engine_counts() -> None:
    run = with_counters(20)
    checks = check_counters(
        run, "fp32", EngineConfig(max_num_seqs=256, max_num_batched_tokens=8192, kv_blocks=100_000)
    )  # type: ignore[arg-type]
    ones = [c for c in checks if c.concurrency == 1]
    assert ones and all(c.simulated_steps == c.engine_steps and c.steps_error_pct == 0 for c in ones)
    many = [c for c in checks if c.concurrency > 1]
    assert many and all(1 < c.simulated_mean_batch <= c.concurrency for c in many)
    # every setting once (prefill and decode points of one setting share its counters)
    assert len({(c.prompt_tokens, c.concurrency) for c in checks}) == len(checks)
    for c in many:  # the counters said a full batch every step: the model's ramp-up and drain take more steps
        assert c.simulated_steps >= c.engine_steps and c.steps_error_pct == pytest.approx(
            (c.simulated_steps - c.engine_steps) / c.engine_steps * 100
        )
