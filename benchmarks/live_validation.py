"""Live validation table: predicted vs measured latency for a shipped workload on this machine.

Measures a fresh, paced run of the workload (--pacing: each point also after idle gaps) with one intra-op
thread fewer than the CPUs (so the load generator has a CPU of its own), then runs `fleetwise validate` at
loads 0.3, 0.5, 0.7 and 0.85 and prints its table. One process serves the whole validation: a canary (batch 1
back to back) before each level and after the last flags a level the host drifted under; each level is judged
from a curve measured around it, half before and half after (--curve-calls per batch size, idle gaps as at the level's rate), and
beside it stand the errors of the run's own curves (paced) and of its back-to-back samples alone. The run and
the validation file go to a temporary folder unless --keep DIR is given.

    python benchmarks/live_validation.py [--workload cnn] [--seconds 20] [--max-batch 4] [--max-delay-ms 2]
        [--pacing gaps=0,1ms,3ms,10ms,30ms,100ms] [--curve-calls 30]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="cnn")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--max-delay-ms", type=float, default=2.0)
    ap.add_argument("--scenario", default=str(ROOT / "scenarios" / "steady-api.yaml"))
    ap.add_argument("--curve-calls", type=int, default=30, help="0: judge every level from the run's curves")
    ap.add_argument("--keep", type=Path, default=None, help="write the run and the validation here")
    ap.add_argument(
        "--pacing", default="gaps=0,1ms,3ms,10ms,30ms,100ms", help="'' measures back to back only"
    )
    args = ap.parse_args()
    threads = max(1, (os.cpu_count() or 2) - 1)
    fleetwise = [sys.executable, "-m", "fleetwise_cli.main"]
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.keep or Path(tmp)
        batches = ",".join(str(b) for b in (1, 2, 4, 8, 16) if b <= max(args.max_batch, 8))
        subprocess.run(
            [
                *fleetwise,
                "measure",
                "-w",
                args.workload,
                "--device",
                "cpu",
                "--precision",
                args.precision,
                "--batch",
                batches,
                "--threads",
                str(threads),
                *(["--pacing", args.pacing] if args.pacing else []),
                "--out",
                str(runs),
            ],
            check=True,
        )
        run = max(runs.glob(f"{args.workload}-*.json"), key=lambda p: p.stat().st_mtime)
        subprocess.run(
            [
                *fleetwise,
                "validate",
                "--run",
                str(run),
                "--precision",
                args.precision,
                "--scenario",
                args.scenario,
                "--load",
                "0.3,0.5,0.7,0.85",
                "--max-batch",
                str(args.max_batch),
                "--max-delay-ms",
                str(args.max_delay_ms),
                "--seconds",
                str(args.seconds),
                "--curve-calls",
                str(args.curve_calls),
                "--out",
                str(args.keep or tmp),
            ],
            check=True,
        )


if __name__ == "__main__":
    main()
