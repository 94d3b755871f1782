"""The local process pool vs a local Ray cluster with the same cores: the full shipped sizing grid (every shipped
scenario on the shipped runs and example profiles, the default grid, early stop) and an LLM engine-knob sweep
(tiny-chat on the in-process LLM run: 3 precisions x max_num_seqs 16,64,256 x tokens 2048,8192 x chunked
on/off = 36 options). Reports wall time per executor, the Ray start-up separately, and whether the plans are
identical.

    python benchmarks/ray_executor.py [--jobs 2]

Against a real cluster set FLEETWISE_RAY_ADDRESS=ray://head:10001 (the figures then include the network).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.sizing_speed import shipped_runs
from planner.fleet.plan import Question, make_plan
from planner.fleet.prices import load_prices
from planner.llm.sizing import size_llm
from planner.traffic.scenario import load_scenario
from planner.workers import Executor

ROOT = Path(__file__).resolve().parents[1]


def sizing_grid(book: object, jobs: int, executor: Executor) -> tuple[float, list[dict[str, object]]]:
    runs = tuple(shipped_runs())
    profiles = tuple(str(p) for p in sorted((ROOT / "profiles").glob("*.yaml")))
    t0, plans = time.perf_counter(), []
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        q = Question(scenario=load_scenario(path), runs=runs, profiles=profiles)
        plans.append(make_plan(q, book, jobs=jobs, executor=executor).model_dump(mode="json"))  # type: ignore[arg-type]
    return time.perf_counter() - t0, plans


def llm_sweep(book: object, jobs: int, executor: Executor) -> tuple[float, dict[str, object]]:
    llm = next(p for p in shipped_runs() if Path(p).name.startswith("llm-cpu-"))
    sc = load_scenario(ROOT / "scenarios" / "llm" / "tiny-chat.yaml")
    t0 = time.perf_counter()
    plan = size_llm(
        sc,
        [llm],
        None,
        (16, 64, 256),
        (2048, 8192),
        (True, False),
        book,  # type: ignore[arg-type]
        "on_demand",
        jobs=jobs,
        executor=executor,
    )
    return time.perf_counter() - t0, plan.model_dump(mode="json")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    book = load_prices(ROOT / "data" / "prices.yaml")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; jobs {args.jobs}")
    grid_local, plans_local = sizing_grid(book, args.jobs, "local")
    llm_local, llm_plan_local = llm_sweep(book, args.jobs, "local")
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=args.jobs, include_dashboard=False, log_to_driver=False, configure_logging=False)
    start = time.perf_counter() - t0
    try:
        grid_ray, plans_ray = sizing_grid(book, args.jobs, "ray")
        llm_ray, llm_plan_ray = llm_sweep(book, args.jobs, "ray")
    finally:
        ray.shutdown()
    print(
        f"ray {ray.__version__} local cluster start-up: {start:.1f} s (once per process, not counted below)"
    )
    print(f"sizing grid, {len(plans_local)} scenarios: local pool {grid_local:.1f} s, ray {grid_ray:.1f} s "
          f"(ray/local {grid_ray / grid_local:.2f}); plans identical: {plans_local == plans_ray}")  # fmt: skip
    print(f"LLM knob sweep, {len(llm_plan_local['options'])} options: local pool {llm_local:.1f} s, ray {llm_ray:.1f} s "  # type: ignore[arg-type]
          f"(ray/local {llm_ray / llm_local:.2f}); plans identical: {llm_plan_local == llm_plan_ray}")  # fmt: skip


if __name__ == "__main__":
    main()
