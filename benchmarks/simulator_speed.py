"""Simulator speed: simulated requests per wall-second, end to end (traffic generation, simulation, metrics).
The static routers run on the event loop; each case also runs on the SimPy engine, alternating, so the ratio
of the two is measured in one run (jsq runs on SimPy either way).

Cases: one replica with dynamic batching; 8 replicas under every router; 64 replicas. Each case runs
`--repeats` times and the median is reported (shared machines are noisy). Load is about 70% of what the
replicas sustain, with batches of up to 8.

    python benchmarks/simulator_speed.py [--requests 300000] [--repeats 3] [--million]
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import time

import simpy

from planner.serving import simulation
from planner.serving.profiles import AssumedProfile
from planner.serving.service_from import from_profile
from planner.serving.sim import BatchPolicy, simulate
from planner.serving.simulation import run_simulation
from planner.traffic.scenario import parse_scenario

PROFILE = {
    "kind": "assumed-profile",
    "name": "bench",
    "device": "bench",
    "points": [
        {"batch": b, "latency": {"dist": "lognormal", "median_ms": 4 + 1.5 * b, "sigma": 0.2}}
        for b in (1, 2, 4, 8)
    ],
}


def case(
    replicas: int, router: str, n: int, repeats: int, engines: tuple[str, ...] = ("loop", "simpy")
) -> tuple[float, float, float]:
    """Median simulated requests/s on the event loop and on the SimPy engine, and the mean batch."""
    model = from_profile(AssumedProfile.model_validate(PROFILE))
    policy = BatchPolicy(8, 0.002)
    per_replica = model.sustainable_items_per_s(8)
    rate = 0.7 * per_replica * replicas
    sc = parse_scenario(
        {"name": "bench", "arrivals": {"process": "poisson", "rate_rps": rate}, "requests": n}
    )
    speeds: dict[str, list[float]] = {e: [1.0] if e not in engines else [] for e in ("loop", "simpy")}
    batch = 0.0
    for _ in range(repeats):
        for engine in engines:
            simulation.simulate = functools.partial(simulate, engine=engine)  # type: ignore[arg-type]
            t = time.perf_counter()
            r = run_simulation(sc, model, replicas, router, policy)  # type: ignore[arg-type]
            speeds[engine].append(n / (time.perf_counter() - t))
            batch = r.mean_batch_size or 0.0
    simulation.simulate = simulate
    return statistics.median(speeds["loop"]), statistics.median(speeds["simpy"]), batch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--million", action="store_true", help="also time one 1,000,000-request single-replica run"
    )
    args = ap.parse_args()
    print(
        f"Python {platform.python_version()}, SimPy {simpy.__version__}, {platform.processor() or platform.machine()}"
    )
    print(
        f"{args.requests} requests per run, median of {args.repeats}; load 70% of sustainable; max_batch 8, 2 ms"
    )
    print("| replicas | router | simulated requests/s | SimPy engine | ratio | mean batch |")
    print("| --- | --- | --- | --- | --- | --- |")
    cases = (
        [(1, "central")]
        + [(8, r) for r in ("central", "random", "rr", "jsq")]
        + [(64, r) for r in ("central", "random", "jsq")]
    )
    for replicas, router in cases:
        speed, simpy_speed, batch = case(replicas, router, args.requests, args.repeats)
        print(
            f"| {replicas} | {router} | {speed:,.0f} | {simpy_speed:,.0f} | {speed / simpy_speed:.2f} | {batch:.2f} |",
            flush=True,
        )
    if args.million:
        t = time.perf_counter()
        case(1, "central", 1_000_000, 1, engines=("loop",))
        print(f"1,000,000 requests, 1 replica with batching: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
