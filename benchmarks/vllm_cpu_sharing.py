"""How vLLM's own processes share the engine's core, and what that does to latency (docs/llm-validation.md).

vLLM on CPU is three processes: the API server (HTTP, tokenising, detokenising, streaming), the engine core
(scheduling) and the worker (the forward). This serves the tiny model with all three pinned to CPU 0, as
benchmarks/vllm_live_checks.py does, and sends the same open-loop traffic (the Azure conversation lengths x 0.25,
Poisson at --rate req/s for --seconds, fleetwise's asyncio sender on CPU 1) three times to the same engine:
1. all three processes on CPU 0;
2. the API server moved to CPU 1 (beside the load generator);
3. the API server and the engine core on CPU 1, the worker alone on CPU 0.
For each it prints client TTFT and TPOT p50 and each process's share of a CPU over the traffic
(/proc/PID/stat user + system time). Nothing else may run on the machine meanwhile.

    python benchmarks/vllm_cpu_sharing.py [--rate 14] [--seconds 25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.llm_live_checks import scenario_file
from benchmarks.served import ROOT, free_port, stop, wait_healthy
from benchmarks.tiny_llm import build
from benchmarks.vllm_engine import START_TIMEOUT_S, VENV, environment, serve_command
from benchmarks.vllm_engine import build as build_venv
from measure.engine_client.http import Endpoint
from measure.engine_client.open_loop import Schedule, open_loop
from planner.llm.simulation import llm_requests
from planner.traffic.scenario import load_scenario

KNOBS = ("--no-enable-prefix-caching", "--max-num-seqs", "256", "--max-num-batched-tokens", "2048")
PLACEMENTS = {  # process -> CPU, per run
    "all on CPU 0": {"api": "0", "core": "0", "worker": "0"},
    "API server on CPU 1": {"api": "1", "core": "0", "worker": "0"},
    "worker alone on CPU 0": {"api": "1", "core": "1", "worker": "0"},
}


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (state, ppid, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def processes(api: int) -> dict[str, int]:
    """The API server, its engine core child and that one's worker child (by /proc's comm and ppid)."""
    out = {"api": api}
    children: dict[int, list[tuple[int, str]]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                children.setdefault(int(_stat(int(d.name))[1]), []).append(
                    (int(d.name), (d / "comm").read_text().strip())
                )
            except (OSError, IndexError, ValueError):
                continue  # a process that ended meanwhile
    for role, prefix in (("core", "VLLM::EngineCor"), ("worker", "VLLM::Worker")):
        parent = out["api"] if role == "core" else out["core"]
        out[role] = next(pid for pid, comm in children.get(parent, []) if comm.startswith(prefix))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system time of the process (all its threads), seconds."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--rate", type=float, default=14.0, help="req/s (14 is load 0.3 of the shipped validation)"
    )
    ap.add_argument("--seconds", type=float, default=25.0)
    ap.add_argument(
        "--trace", type=Path, default=ROOT.parent / "shared" / "traces" / "azure-llm-2023-conv.csv"
    )
    args = ap.parse_args()
    why = build_venv()
    if why:
        sys.exit(f"vLLM is not available here: {why}")
    if len(os.sched_getaffinity(0)) < 2:
        sys.exit("needs two CPUs: the engine's and the load generator's")
    os.sched_setaffinity(0, {1})  # the load generator
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        folder = build(tmp / "tiny-llm")
        n = int(args.rate * args.seconds)
        reqs, _, _ = llm_requests(load_scenario(scenario_file(tmp, args.trace)), n)
        send = np.cumsum(np.random.default_rng(1).exponential(1 / args.rate, n))
        # the tiny model's tokenizer reads one token a word (the validation's calibration: 1 per word + 0)
        sched = Schedule(send - send[0], reqs.prompt.astype(int), reqs.output.astype(int), seed=7)
        port = free_port()
        env = {**environment(), "VLLM_CPU_OMP_THREADS_BIND": "0"}
        cmd = ["taskset", "-c", "0", *serve_command(folder, port, VENV, KNOBS)]
        log = (tmp / "vllm.log").open("wb")
        engine = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url + "/health", engine, timeout_s=START_TIMEOUT_S)
            pids = processes(engine.pid)
            print(
                f"{'placement':<24} {'TTFT p50 ms':>11} {'TPOT p50 ms':>11}   CPU share: API server, engine core, worker"
            )
            for name, where in PLACEMENTS.items():
                for proc, cpu in where.items():
                    subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pids[proc])], check=True,
                                   stdout=subprocess.DEVNULL)  # fmt: skip
                before = {k: cpu_seconds(p) for k, p in pids.items()}
                t0 = time.perf_counter()
                sent, _ = open_loop(Endpoint.parse(url), str(folder), sched, timeout_s=60)
                wall = time.perf_counter() - t0
                share = {k: (cpu_seconds(p) - before[k]) / wall for k, p in pids.items()}
                done = [s for s in sent if s.result.error is None and s.result.token_times]
                ttft = np.median([(s.result.token_times[0] - s.scheduled) * 1000 for s in done])
                tpot = np.median([s.result.tpot_ms for s in done if s.result.tpot_ms is not None])
                print(
                    f"{name:<24} {ttft:>11.2f} {tpot:>11.2f}   {share['api']:.0%}, {share['core']:.0%}, "
                    f"{share['worker']:.0%} ({len(done)} of {len(sent)} requests)"
                )
        finally:
            stop(engine)
            log.close()


if __name__ == "__main__":
    main()
