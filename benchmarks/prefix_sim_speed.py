"""Prefix-caching simulator speed: the Mooncake conversation hour (12,031 requests, unscaled: mean 12,035 prompt
and 343 output tokens) on 8 replicas of the shipped vLLM engine run, in one run: without the cache
(least-outstanding), with it (least-outstanding) and with it and prefix-aware routing. Reports the median wall
time of `--repeats` runs of each (traffic, simulation and metrics), engine steps per second and the share of
prompt tokens found cached. Issue 31's target: <= 10 s on 2 cores with the cache and prefix routing.

The run's grid ends at 2,000-token prompts: longer prefills are timed at its edge (counted in the warnings);
this measures the simulator's speed, not a plan.

    python benchmarks/prefix_sim_speed.py [--trace ../shared/traces/mooncake-conversation.jsonl] [--repeats 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from measure.run import load_run
from planner.llm.engine import EngineConfig
from planner.llm.simulation import run_llm_simulation
from planner.llm.steps import step_model
from planner.traffic.scenario import parse_scenario

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
CASES = (
    ("no cache", False, "least-outstanding"),
    ("cache", True, "least-outstanding"),
    ("cache + prefix routing", True, "prefix-aware"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--trace", type=Path, default=ROOT.parent / "shared" / "traces" / "mooncake-conversation.jsonl"
    )
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    sc = parse_scenario(
        {
            "name": "mooncake-conversation",
            "arrivals": {
                "process": "trace",
                "path": str(args.trace),
                "format": "mooncake",
                "block_tokens": 512,
            },
            "llm": {
                "prompt": {"dist": "trace", "column": "input_length"},
                "output": {"dist": "trace", "column": "output_length"},
            },
            "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 2000}],
            "requests": 12_031,  # the whole trace, once
        }
    )
    run = load_run(RUN)
    model = step_model(run)
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for label, cache, router in CASES:
        cfg = EngineConfig(
            max_num_batched_tokens=8192, block_size=16, kv_blocks=100_000, prefix_caching=cache
        )
        walls, result = [], None
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = run_llm_simulation(sc, model, cfg, 8, router, run)
            walls.append(time.perf_counter() - t0)
        assert result is not None
        wall = statistics.median(walls)
        hit = "-" if result.prefix_hit_share is None else f"{result.prefix_hit_share:.1%}"
        print(
            f"{label}: wall s median {wall:.2f} of {', '.join(f'{w:.2f}' for w in walls)}; steps {result.steps:,} "
            f"({result.steps / wall:,.0f}/s); prompt tokens found cached {hit}"
        )


if __name__ == "__main__":
    main()
