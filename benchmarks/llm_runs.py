"""The commands that measured the shipped LLM runs: the tiny decoder in-process, and the tiny model served by
`transformers serve --continuous-batching` on 127.0.0.1, measured through --endpoint.

    python benchmarks/llm_runs.py [--out data/runs] [--only inprocess|engine]

The engine is built (random weights, locally trained tokenizer), started and stopped by its own pid here.
Needs the `llm` extra. Nothing else may run on the machine meanwhile: the two share its CPU.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import free_port, stop, wait_healthy
from benchmarks.tiny_llm import build, serve_command

FLEETWISE = str(Path(sys.executable).with_name("fleetwise"))


def in_process(out: Path) -> None:
    """The tiny preset at fp32, bf16 and int8 on the default grid."""
    cmd = [FLEETWISE, "measure", "-w", "llm", "-p", "preset=tiny", "--device", "cpu"]
    subprocess.run([*cmd, "--precision", "fp32,bf16,int8", "--out", str(out)], check=True)


def engine(out: Path) -> None:
    """The same shape served with continuous batching on this CPU, swept at concurrency 1..8."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = build(Path(tmp) / "tiny-llm")
        port = free_port()
        log = (Path(tmp) / "serve.log").open("wb")
        proc = subprocess.Popen(serve_command(folder, port), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout_s=180)
            version = importlib.metadata.version("transformers")
            params = {
                "engine": "transformers-serve",
                "version": version,
                "continuous_batching": "true",
                "device_kind": "cpu",
            }
            cmd = [FLEETWISE, "measure", "--endpoint", f"http://127.0.0.1:{port}", "--model", str(folder)]
            cmd += ["--prompt-tokens", "64,256,1024", "--concurrency", "1,2,4,8", "--output-tokens", "32"]
            cmd += ["--max-seconds-per-point", "30", "--out", str(out)]
            for k, v in params.items():
                cmd += ["--engine-param", f"{k}={v}"]
            subprocess.run(cmd, check=True)
        finally:
            stop(proc)
            log.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data/runs"))
    ap.add_argument("--only", choices=["inprocess", "engine"])
    args = ap.parse_args()
    if args.only in (None, "inprocess"):
        in_process(args.out)
    if args.only in (None, "engine"):
        engine(args.out)


if __name__ == "__main__":
    main()
