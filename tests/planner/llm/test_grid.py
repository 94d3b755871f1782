"""An engine sweep's prompt lengths chosen from the scenario it is measured for."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from measure.run import load_run
from planner.llm.grid import prompts_for
from planner.llm.simulation import llm_requests
from planner.traffic.scenario import ScenarioError, load_scenario
from tests.conftest import REPO
from tests.measure.engine_client.test_endpoint import server  # noqa: F401 (the fixture)

TINY_CHAT = REPO / "scenarios" / "llm" / "tiny-chat.yaml"


@pytest.mark.parametrize("output", [8, 32, 64])
def test_the_grid_holds_every_prompt_and_every_context_of_the_scenario(output: int) -> None:
    sc = load_scenario(TINY_CHAT)
    grid = prompts_for(sc, output)
    reqs, _, _ = llm_requests(sc, 2000)
    assert grid == sorted(set(grid)) and all(p % 16 == 0 for p in grid)
    assert grid[-1] >= int((reqs.prompt + reqs.output).max()) >= int(reqs.prompt.max())
    # the smallest decode point's context (prompt + output/2) is at or below every context of the traffic
    assert grid[0] + output / 2 <= reqs.prompt.min() or grid[0] == 16
    assert grid[0] <= reqs.prompt.min()
    for q in (0.1, 0.5, 0.9):
        assert any(p - 16 < np.quantile(reqs.prompt, q) <= p for p in grid)


def test_a_scenario_without_token_lengths_has_no_grid() -> None:
    with pytest.raises(ScenarioError, match="no llm block"):
        prompts_for(load_scenario(REPO / "scenarios" / "steady-api.yaml"))


def test_measure_takes_its_prompts_from_the_scenario_or_refuses_the_mix(server: str, tmp_path: Path) -> None:  # noqa: F811
    args = ["measure", "--endpoint", server, "--model", "fake-model", "--concurrency", "1", "--output-tokens", "4",
            "--requests", "6", "--max-seconds-per-point", "3", "--out", str(tmp_path)]  # fmt: skip
    out = CliRunner().invoke(app, [*args, "--scenario", str(TINY_CHAT)])
    assert out.exit_code == 0, out.output
    (f,) = tmp_path.glob("llm-engine-*.json")
    run = load_run(f)
    assert run.sweep.llm is not None and run.sweep.llm.prompt_tokens == prompts_for(
        load_scenario(TINY_CHAT), 4
    )
    both = CliRunner().invoke(app, [*args, "--scenario", str(TINY_CHAT), "--prompt-tokens", "64"])
    assert both.exit_code == 2 and "without --prompt-tokens" in both.output
    alone = CliRunner().invoke(app, ["measure", "--scenario", str(TINY_CHAT), "--out", str(tmp_path)])
    assert alone.exit_code == 2 and "with --endpoint" in alone.output
    assert json.loads(f.read_text())["id"]
