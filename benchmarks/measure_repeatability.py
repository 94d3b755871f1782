"""Repeatability of the measurement engine: the same small sweep twice, point by point.

Prints, per point, the steady-state throughput of both sweeps, their relative difference, each one's 95% CI
half-width and the wall time to converge; then the median and max |difference| and the total wall time.
Machines are shared and noisy: compare the differences with the CIs, not with zero.

    python benchmarks/measure_repeatability.py [--workload mlp] [--precision fp32,bf16] [--batch 1,4,16]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from measure.batch.sweep import run_sweep
from measure.core.parsing import parse_int_list, parse_precisions
from measure.core.steady_state import SamplingConfig
from measure.inprocess.plan import SweepRequest
from measure.run import Point
from measure.sensors.stack import cpu_info


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="mlp")
    ap.add_argument("--precision", default="fp32,bf16")
    ap.add_argument("--batch", default="1,4,16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    req = SweepRequest(
        workload=args.workload,
        params={},
        device=args.device,
        precisions=parse_precisions(args.precision),
        batch_sizes=parse_int_list(args.batch, "batch"),
        sampling=SamplingConfig(),
    )
    runs, walls = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        runs.append(run_sweep(req, command=["benchmark"]).run)
        walls.append(time.perf_counter() - t0)
    model, _ = cpu_info()
    print(
        f"machine: {model}, {runs[0].stack.cpu_count_usable} usable cores, torch {runs[0].stack.torch_version}, "
        f"{platform.python_version()}; device {args.device}; workload {args.workload}"
    )
    print(
        f"{'precision':>9} {'batch':>5} {'items/s A':>11} {'items/s B':>11} {'diff':>7} "
        f"{'CI A':>6} {'CI B':>6} {'conv. s A':>9} {'conv. s B':>9} status"
    )
    diffs = []
    by_key = [{p.key: p for p in r.points} for r in runs]
    for key, a in by_key[0].items():
        b: Point = by_key[-1][key]
        if a.throughput_items_per_s is None or b.throughput_items_per_s is None:
            print(f"{key[0]:>9} {key[1]:>5}  {a.status}: {a.reason}")
            continue
        d = b.throughput_items_per_s / a.throughput_items_per_s - 1
        diffs.append(abs(d))
        assert a.latency_ms and b.latency_ms
        print(
            f"{key[0]:>9} {key[1]:>5} {a.throughput_items_per_s:>11.1f} {b.throughput_items_per_s:>11.1f} "
            f"{d:>+7.1%} {_pct(a.latency_ms.mean_ci95_halfwidth_rel):>6} {_pct(b.latency_ms.mean_ci95_halfwidth_rel):>6} "
            f"{a.elapsed_s:>9.2f} {b.elapsed_s:>9.2f} {a.status}/{b.status}"
        )
    if diffs:
        print(
            f"|throughput difference| median {statistics.median(diffs):.1%}, max {max(diffs):.1%} "
            f"over {len(diffs)} points"
        )
    print("sweep wall time: " + ", ".join(f"{w:.1f} s" for w in walls))


if __name__ == "__main__":
    main()
