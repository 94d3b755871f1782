"""Sizing speed: wall time to size every shipped scenario against the shipped runs and example profiles
with the full default grid (every ok precision x max_batch 1,4,16,64 + largest x max_delay 0,5 ms).

Target (issue 5): under 60 s in total on 2 cores. Each scenario is sized `--repeats` times and the median
wall time is reported with the number of options and simulations (the machines are shared and noisy).

    python benchmarks/sizing_speed.py [--repeats 1] [--jobs 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from planner.plan import Question, make_plan
from planner.prices import load_prices
from planner.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def shipped_runs() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "data/runs"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    files = [str(ROOT / f) for f in out.stdout.split() if f.endswith(".json")]
    return files or sorted(str(p) for p in (ROOT / "data" / "runs").glob("*.json"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    book = load_prices(ROOT / "data" / "prices.yaml")
    profiles = tuple(str(p) for p in sorted((ROOT / "profiles").glob("*.yaml")))
    runs = tuple(shipped_runs())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; jobs {args.jobs}")
    print(f"{'scenario':<20} {'options':>7} {'simulations':>11} {'median s':>9}  best per group")
    total = 0.0
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        q = Question(scenario=load_scenario(path), runs=runs, profiles=profiles)
        times, plan = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            plan = make_plan(q, book, jobs=args.jobs)
            times.append(time.perf_counter() - t0)
        assert plan is not None
        med = statistics.median(times)
        total += med
        best = "; ".join(
            f"{o.precision or 'assumed'} b{o.max_batch} d{o.max_delay_ms:g}: {o.replicas_deployed}"
            for o in plan.options
            if o.rank == 1
        )
        print(f"{path.stem:<20} {len(plan.options):>7} {plan.simulations:>11} {med:>9.1f}  {best}")
    print(f"total (sum of medians): {total:.1f} s; target < 60 s on 2 cores")


if __name__ == "__main__":
    main()
