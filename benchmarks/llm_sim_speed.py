"""LLM simulator speed: the Azure conversation trace (one hour) replayed on 4 replicas of the shipped tiny
engine run, token lengths scaled to what that model was measured at. Reports the median wall time of
`--repeats` runs (traffic, simulation and metrics), simulated requests and engine steps per second, and the
real-time factor (trace span / wall time). Target: <= 15 s on 2 cores (>= 240x real time).

    python benchmarks/llm_sim_speed.py [--trace ../shared/traces/azure-llm-2023-conv.csv] [--repeats 3]
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
RUN = ROOT / "data" / "runs" / "llm-engine-cpu-20261129T115217Z-4c22180c851b.json"
SCALE = 0.25  # the trace's prompts (median ~1k tokens) onto the engine run's 64..1024-token grid
# the engine run measured up to 8 streams at once: more would be timed at the grid's edge
CFG = EngineConfig(
    max_num_seqs=8, max_num_batched_tokens=2048, chunked_prefill=True, block_size=16, kv_blocks=4096
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--trace", type=Path, default=ROOT.parent / "shared" / "traces" / "azure-llm-2023-conv.csv"
    )
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sc = parse_scenario(
        {
            "name": "azure-conv-scaled",
            "arrivals": {"process": "trace", "path": str(args.trace)},
            "llm": {
                "prompt": {"dist": "trace"},
                "output": {"dist": "trace", "column": "GeneratedTokens"},
                "scale": SCALE,
            },
            "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 500}],
            "requests": 19_366,  # the whole trace, once
        }
    )
    run = load_run(RUN)
    model = step_model(run)
    walls, result = [], None
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        result = run_llm_simulation(sc, model, CFG, 4, "least-outstanding", run)
        walls.append(time.perf_counter() - t0)
    assert result is not None
    wall = statistics.median(walls)
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"requests {result.requests_total:,}, steps {result.steps:,}, stable {result.stable}")
    print(f"wall s: median {wall:.2f} of {', '.join(f'{w:.2f}' for w in walls)}")
    print(f"simulated requests/s {result.requests_total / wall:,.0f}; steps/s {result.steps / wall:,.0f}")
    span = result.requests_total / result.offered_rps  # the trace's arrival window
    p99 = result.ttft_ms.p99 if result.ttft_ms else 0.0
    print(f"trace span {span:,.0f} s; real-time factor {span / wall:,.0f}x; TTFT p99 {p99:.4g} ms")
    print(
        f"steps beyond the measured grid: {result.steps_beyond_measured_grid:,}; warnings: {result.warnings}"
    )


if __name__ == "__main__":
    main()
