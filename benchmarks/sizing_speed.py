"""Sizing speed: wall time to size every shipped scenario against the shipped runs and example profiles
with the full default grid (every ok precision x max_batch 1,4,16,64 + largest x max_delay 0,5 ms), with
the sequential early stop (the default) and at full length, and every answer that differs between the two.

Target (issue 14): under 20 s in total on 2 cores with early stopping. Each scenario is sized `--repeats`
times per mode and the median wall time is reported with the options and simulations (the machines are
shared and noisy: the two modes of one scenario run back to back, so their ratio is the robust figure).

    python benchmarks/sizing_speed.py [--repeats 1] [--jobs 2] [--no-full]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

from planner.fleet.plan import Plan, Question, make_plan
from planner.fleet.prices import load_prices
from planner.traffic.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def shipped_runs() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "data/runs"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    files = [str(ROOT / f) for f in out.stdout.split() if f.endswith(".json")]
    return files or sorted(str(p) for p in (ROOT / "data" / "runs").glob("*.json"))


def timed(q: Question, book: object, jobs: int, repeats: int) -> tuple[float, Plan]:
    times, plan = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan = make_plan(q, book, jobs=jobs)  # type: ignore[arg-type]
        times.append(time.perf_counter() - t0)
    assert plan is not None
    return statistics.median(times), plan


def answers(plan: Plan) -> dict[str, tuple[str, object]]:
    """Per option: the counts a planner reads (sized, optimistic, per diurnal hour)."""
    return {
        o.key: (o.label, (o.replicas, o.replicas_optimistic, tuple(h.replicas for h in o.hourly)))
        for o in plan.options
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-full", action="store_true", help="skip the full-length comparison")
    args = ap.parse_args()
    book = load_prices(ROOT / "data" / "prices.yaml")
    profiles = tuple(str(p) for p in sorted((ROOT / "profiles").glob("*.yaml")))
    runs = tuple(shipped_runs())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; jobs {args.jobs}")
    print(
        f"{'scenario':<18} {'options':>7} {'sims':>5} {'reused':>6} {'stopped':>7} {'early s':>8} {'full s':>7} {'ratio':>6}  "
        "best per group"
    )
    total = total_full = 0.0
    diffs: list[str] = []
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        q = Question(scenario=load_scenario(path), runs=runs, profiles=profiles)
        early_s, plan = timed(q, book, args.jobs, args.repeats)
        total += early_s
        full_txt, ratio = "-", "-"
        if not args.no_full:
            full_s, full = timed(dataclasses.replace(q, early_stop=False), book, args.jobs, args.repeats)
            total_full += full_s
            full_txt, ratio = f"{full_s:.1f}", f"{full_s / early_s:.2f}"
            a, b = answers(plan), answers(full)
            for k in a:
                if a[k][1] != b[k][1]:
                    diffs.append(f"{path.stem}: {a[k][0]}: early {a[k][1]} vs full-length {b[k][1]}")
        best = "; ".join(
            f"{o.precision or 'assumed'} b{o.max_batch} d{o.max_delay_ms:g}: {o.replicas_deployed}"
            for o in plan.options
            if o.rank == 1
        )
        print(
            f"{path.stem:<18} {len(plan.options):>7} {plan.simulations:>5} {plan.simulations_reused:>6} {plan.simulations_stopped_early:>7} "
            f"{early_s:>8.1f} {full_txt:>7} {ratio:>6}  {best}"
        )
    line = f"total (sum of medians): early stop {total:.1f} s"
    if not args.no_full:
        line += f", full length {total_full:.1f} s (ratio {total_full / total:.2f})"
    print(line + "; target < 20 s on 2 cores")
    if not args.no_full:
        print(f"answers that differ (sized, optimistic, hourly): {len(diffs)}")
        for d in diffs:
            print(f"  {d}")


if __name__ == "__main__":
    main()
