"""The Ray executor and a measurement campaign on a local Ray cluster started here (2 CPUs, stopped at the
end): the same plans as the local process pool for the same questions, a failing task named, and one run per
node collected. Skipped where ray is not installed; CI installs it (the `ray` extra)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from fleetwise_cli.main import app  # noqa: E402
from planner.fleet.plan import Question, make_plan, sensitivity  # noqa: E402
from planner.fleet.prices import load_prices  # noqa: E402
from planner.llm.sizing import LlmOption, LlmTask, size_llm, size_task  # noqa: E402
from planner.traffic.scenario import load_scenario  # noqa: E402
from planner.workers import ExecutorError, in_workers  # noqa: E402
from tests.conftest import REPO, shipped_files  # noqa: E402

pytestmark = pytest.mark.slow
BOOK = load_prices(REPO / "data" / "prices.yaml")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def _plans(q: Question) -> tuple[dict, dict]:  # type: ignore[type-arg]
    local = make_plan(q, BOOK, jobs=2, executor="local").model_dump(mode="json")
    seen: list[tuple[int, int]] = []
    remote = make_plan(q, BOOK, 2, lambda d, t, _l: seen.append((d, t)), "ray").model_dump(mode="json")
    assert seen and seen[-1][0] == seen[-1][1]  # progress reported as tasks finish
    return local, remote


def test_sizing_and_sensitivity_give_identical_plans_on_ray_and_on_the_local_pool(
    cluster: None,
) -> None:
    run = next(
        f for f in shipped_files() if f.name.startswith("cnn-cpu-20261128T172913Z")
    )  # priced: sensitivity re-sizes it
    q = Question(
        scenario=load_scenario(REPO / "scenarios" / "steady-api.yaml"), runs=(str(run),), profiles=(),
        max_batches=(1, 4), max_delays_ms=(0.0, 2.0), sizing_requests=2000,
    )  # fmt: skip
    local, remote = _plans(q)
    assert local == remote and len(local["options"]) >= 3  # max_batch 1 takes no delay: 3 distinct options
    plan = make_plan(q, BOOK, jobs=1)
    rows_local = [r.model_dump() for r in sensitivity(q, BOOK, plan, 2, executor="local")]
    rows_ray = [r.model_dump() for r in sensitivity(q, BOOK, plan, 2, executor="ray")]
    assert rows_local == rows_ray and rows_local


def test_an_llm_knob_sweep_gives_the_same_plan_on_ray(cluster: None) -> None:
    llm = next(f for f in shipped_files() if f.name.startswith("llm-cpu-"))
    sc = load_scenario(REPO / "scenarios" / "llm" / "tiny-chat.yaml")
    args = (sc, [str(llm)], ["fp32"], (16, 64), (2048,), (True, False), BOOK, "on_demand")
    local = size_llm(*args, requests=1500, jobs=2, executor="local").model_dump()  # type: ignore[arg-type]
    remote = size_llm(*args, requests=1500, jobs=2, executor="ray").model_dump()  # type: ignore[arg-type]
    assert local == remote and len(local["options"]) >= 3  # max_batch 1 takes no delay: 3 distinct options


def test_a_task_that_fails_on_the_cluster_stops_the_sizing_with_its_name(
    cluster: None, tmp_path: Path
) -> None:
    sc = load_scenario(REPO / "scenarios" / "llm" / "tiny-chat.yaml")
    missing = LlmOption(str(tmp_path / "gone.json"), "fp32", 8, 2048, True)
    task = LlmTask(missing, sc, BOOK, "on_demand", 1000, 8, None)
    with pytest.raises(ExecutorError, match="max_num_seqs 8") as info:
        in_workers(size_task, [task], 1, None, "ray")
    assert "gone.json" in str(info.value) or "failed on the Ray cluster" in str(info.value)


def test_a_campaign_collects_one_run_per_node_and_names_the_nodes_without_the_device(
    cluster: None, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    args = ["campaign", "--device", "cpu", "--out", str(out), "--", "-w", "mlp", "--precision", "fp32",
            "--batch", "1,2", "--min-seconds-per-point", "0.2", "--max-seconds-per-point", "0.5",
            "--idle-seconds", "0"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    nodes = [n for n in ray.nodes() if n["Alive"]]
    runs = list(out.glob("*.json"))
    assert len(runs) == len(nodes) == 1
    data = json.loads(runs[0].read_text())
    assert data["workload"]["name"] == "mlp" and data["stack"]["device_kind"] == "cpu"
    gpu = CliRunner().invoke(app, [*args[:2], "cuda", *args[3:]])
    assert gpu.exit_code == 2 and "skipped: no GPU" in gpu.output and "no node produced a run" in gpu.output
