"""The autoscaled day's windows against the whole day simulated in one piece, on tiny-chat-day's shape at a
peak the whole day fits the work budget at (default 5 req/s: about 260,000 requests), on the shipped vLLM run.

`fleetwise day --autoscale` simulates each hour's first `--window` seconds and counts the rest of the hour at the
window's second half; `--window-s 3600` simulates the day in one piece, the pool's state carried through every
hour. This prints both for each autoscaler target and start-up time, with the wall time of each, so the docs can
say how far the windows' device-hours and SLO misses are from the day's.

    python benchmarks/autoscale_window_check.py [--peak 5] [--targets 0.5,1] [--startups 0,90] [--window 600]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from measure.run import load_run
from planner.llm.autoscale import AutoscalePolicy
from planner.llm.day_autoscaled import autoscaled_day
from planner.llm.engine import EngineConfig
from planner.llm.steps import step_model
from planner.traffic.scenario import Diurnal, load_scenario

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
SCENARIO = ROOT / "scenarios" / "llm" / "tiny-chat-day.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peak", type=float, default=5.0, help="peak req/s (tiny-chat-day's is 120)")
    ap.add_argument("--metric", default="concurrency")
    ap.add_argument("--targets", default="0.5,1")
    ap.add_argument("--startups", default="0,90")
    ap.add_argument("--window", type=float, default=600.0)
    args = ap.parse_args()
    sc = load_scenario(SCENARIO)
    assert isinstance(sc.arrivals, Diurnal)
    rates = [args.peak * m for m in sc.arrivals.hourly_multipliers]
    model = step_model(load_run(RUN), None)
    cfg = EngineConfig(256, 2048, True, 128, 8192)  # as the docs' tiny-chat-day runs
    print(f"machine: {platform.node()} ({platform.machine()}, Python {platform.python_version()})")
    print(f"tiny-chat-day's shape at peak {args.peak:g} req/s, {sum(rates) * 3600:,.0f} requests a day")
    print(
        "| target | start-up s | simulated | replica-hours | requests over an SLO | scale-ups / downs | wall s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for target in (float(x) for x in args.targets.split(",")):
        for startup in (float(x) for x in args.startups.split(",")):
            policy = AutoscalePolicy(metric=args.metric, target=target, startup_s=startup)
            for window in (args.window, 3600.0):
                t0 = time.perf_counter()
                d = autoscaled_day(sc, model, cfg, "least-outstanding", rates, policy, 1, window)
                wall = time.perf_counter() - t0
                what = "whole day" if window >= 3600 else f"{window:g} s windows"
                print(
                    f"| {args.metric}:{target:g} | {startup:g} | {what} | {d.replica_hours_per_day:.2f} | "
                    f"{d.missed_per_day:,.0f} ({d.missed_per_day / d.requests_per_day:.3%}) | "
                    f"{d.scale_ups} / {d.scale_downs} | {wall:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
