"""A real soak: one point run for minutes, to see whether the first minutes differ from the rest.

Prints the windows (throughput, p50/p99, power where readable), the early-vs-rest comparisons and the verdict,
and writes nothing unless --out is given. On a shared machine, tenants come and go during a long soak: read
the per-window spread next to the verdict.

    python benchmarks/soak.py [--workload mlp] [--precision fp32] [--batch 16] [--duration 5m] [--window 10s]
"""

from __future__ import annotations

import argparse
import platform
import statistics

from measure.batch.soak import parse_duration, run_soak
from measure.core.parsing import parse_int_list, parse_precisions
from measure.inprocess.plan import SweepRequest, plan_sweep
from measure.run import save_run
from measure.sensors.stack import cpu_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", default="mlp")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--batch", default="16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--duration", default="5m")
    ap.add_argument("--window", default="10s")
    ap.add_argument("--out", default=None, help="folder to save the soak run in (default: not saved)")
    args = ap.parse_args()
    req = SweepRequest(
        workload=args.workload,
        params={},
        device=args.device,
        precisions=parse_precisions(args.precision),
        batch_sizes=parse_int_list(args.batch, "batch"),
    )
    plan = plan_sweep(
        req, command=["benchmarks/soak.py", *[f"--{k}={v}" for k, v in vars(args).items() if v]]
    )
    duration, window = parse_duration(args.duration), parse_duration(args.window)
    run = run_soak(plan, duration, window).run
    assert run.soak is not None
    print(
        f"machine: {cpu_info()[0]}, {plan.stack.cpu_count_usable} usable cores, Python {platform.python_version()}"
    )
    print(f"workload {run.workload.name} {args.precision} batch {args.batch} on {args.device}")
    print("| window (s) | items/s | p50 ms | p99 ms | W |")
    print("| --- | --- | --- | --- | --- |")
    for w in run.soak.windows:
        watts = "n/a" if w.power_mean_w is None else f"{w.power_mean_w:.1f}"
        print(
            f"| {w.start_s:.0f}-{w.end_s:.0f} | {w.throughput_items_per_s:.1f} | {w.latency_p50_ms:.3f} "
            f"| {w.latency_p99_ms:.3f} | {watts} |"
        )
    tput = [w.throughput_items_per_s for w in run.soak.windows]
    spread = (max(tput) - min(tput)) / statistics.median(tput)
    print(f"windows: {len(tput)}, median {statistics.median(tput):.1f} items/s, max-min spread {spread:.1%}")
    for c in run.soak.comparisons:
        p = "n/a" if c.p_value is None else f"{c.p_value:.2g}"
        print(
            f"{c.quantity}: early {c.early_median:.4g}, rest {c.rest_median:.4g}, change {c.relative_change:+.1%}, "
            f"p={p}, significant={c.significant}"
        )
    print(f"verdict: {run.soak.verdict}")
    idle = run.idle_power
    print(f"idle power: {getattr(idle, 'power_w', None) or getattr(idle, 'unavailable', 'n/a')}")
    if args.out:
        print(save_run(run, args.out))


if __name__ == "__main__":
    main()
