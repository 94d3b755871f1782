"""Longer mutation fuzz of the shipped runs and scenarios (the CI test runs 120 examples of each).

Every mutation must be rejected with the format's own error or give a result; anything else is a crash and is
printed with the edits that caused it. Each check runs in this process under an address-space cap, so a check
that tried to eat the machine fails here instead.

    python benchmarks/fuzz_inputs.py [--runs N] [--scenarios N] [--seed S] [--memory-gib G]
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzzing import CHECKS, mutate

SLOW_S = 10.0  # the CI fuzz test's limit per example
HANG_S = 60.0  # a check that has not finished in a minute counts as a hang


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5000, help="mutated run files")
    ap.add_argument("--scenarios", type=int, default=3000, help="mutated scenarios")
    ap.add_argument("--benchmarks", type=int, default=2000, help="mutated vllm, GuideLLM and AIPerf results")
    ap.add_argument("--llm-validations", type=int, default=500, help="mutated LLM validation files")
    ap.add_argument("--llm-scenarios", type=int, default=1000, help="mutated generative scenarios")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--memory-gib", type=float, default=6.0, help="address-space cap of this process")
    args = ap.parse_args()
    cap = int(args.memory_gib * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    rng = np.random.default_rng(args.seed)
    print(
        f"machine: {platform.node()} {platform.machine()}, {platform.python_version()}; cap {args.memory_gib:g} GiB"
    )
    crashes = 0
    counts = {
        "run": args.runs,
        "scenario": args.scenarios,
        "benchmark": args.benchmarks,
        "llm-validation": args.llm_validations,
        "llm-scenario": args.llm_scenarios,
    }
    for kind, count in counts.items():
        if count <= 0:
            continue
        load, check = CHECKS[kind]
        seeds = load()
        outcomes: dict[str, int] = {}
        times: list[float] = []
        for _ in range(count):
            seed = int(rng.integers(len(seeds)))
            edits = [
                (int(rng.integers(10**6)), int(rng.integers(3)), int(rng.integers(10**3)))
                for _ in range(int(rng.integers(1, 5)))
            ]
            t0 = time.perf_counter()
            try:
                outcome = check(mutate(seeds[seed], edits))
            except Exception as exc:
                outcome = "crash"
                crashes += 1
                if crashes <= 10:
                    print(f"CRASH {kind} seed {seed} edits {edits}: {type(exc).__name__}: {exc}")
                    traceback.print_exc(limit=3)
            took = time.perf_counter() - t0
            if not times or took > max(times):
                slowest = (seed, edits, outcome)
            times.append(took)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        t = np.asarray(times) * 1000
        print(
            f"{kind}: {count} mutations: {outcomes}; per check median {np.median(t):.1f} ms, "
            f"p99 {np.percentile(t, 99):.1f} ms, max {t.max():.0f} ms; over {SLOW_S:g} s: {(t > SLOW_S * 1000).sum()}, hangs (over {HANG_S:g} s): {(t > HANG_S * 1000).sum()}"
        )
        print(f"  slowest: seed {slowest[0]} edits {slowest[1]} -> {slowest[2]}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB; crashes: {crashes}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
