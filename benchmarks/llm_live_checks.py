"""The LLM engine model held against a real engine, and against the load generators users already run.

In one session of the tiny model served by `transformers serve --continuous-batching` on 127.0.0.1 (started
and stopped here by its own pid, with explicit --cb-* knobs the simulator is given too):
1. measure its curves through `fleetwise measure --endpoint` (concurrency 1..32, prompts 64/256/1024);
2. `fleetwise validate` it live: open-loop streams at 0.3/0.5/0.7/0.85 of its measured sustainable rate, token
   lengths of the Azure conversation trace scaled by 0.25 (the trace is read, never copied);
3. GuideLLM (separate virtualenv, `--guidellm`) at a few constant rates through benchmarks/eos_passthrough.py
   (GuideLLM sends `ignore_eos`, which the engine refuses), one worker process on this 2-core machine;
4. AIPerf (`--aiperf`) at one Poisson rate, straight at the engine;
5. import both results and predict them from the run's curves (`fleetwise validate --benchmark`).

    python benchmarks/llm_live_checks.py --guidellm /tmp/peers/bin/guidellm --aiperf /tmp/peers/bin/aiperf \\
        [--runs data/runs --validations data/validations --benchmarks data/benchmarks --raw DIR]

Nothing else may run on the machine meanwhile: engine, load generators and client share its two CPUs.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import ROOT, free_port, stop, wait_healthy
from benchmarks.tiny_llm import ENGINE_KNOBS, build, serve_command

FLEETWISE = str(Path(sys.executable).with_name("fleetwise"))
KNOB_ARGS = [
    "--max-num-seqs", "256", "--max-num-batched-tokens", str(ENGINE_KNOBS["--cb-max-batch-tokens"]),
    "--block-size", str(ENGINE_KNOBS["--cb-block-size"]), "--kv-blocks", str(ENGINE_KNOBS["--cb-num-blocks"]),
]  # fmt: skip
KNOBS_SOURCE = (
    "transformers serve --cb-max-batch-tokens 2048 --cb-block-size 16 --cb-num-blocks 8192 (FIFO scheduler: decodes "
    "first, then prefills chunked within the token budget); max_requests_per_batch left to transformers (auto, at "
    "most 1024), so max_num_seqs 256 is not binding at these loads"
)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, text=True, **kw)  # type: ignore[call-overload]


def newest(folder: Path, pattern: str) -> Path:
    return max(folder.glob(pattern), key=lambda p: p.stat().st_mtime)


def scenario_file(tmp: Path, trace: Path) -> Path:
    """The Azure conversation trace's token lengths scaled onto the tiny model's measured grid."""
    sc = {
        "name": "azure-conv-lengths-x0.25",
        "description": "token lengths of the Azure LLM conversation trace (2023) scaled by 0.25; arrivals are "
        "replaced by open-loop Poisson traffic at each load level",
        "arrivals": {"process": "trace", "path": str(trace)},
        "llm": {
            "prompt": {"dist": "trace"},
            "output": {"dist": "trace", "column": "GeneratedTokens"},
            "scale": 0.25,
        },
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 200}],
        "requests": 2000,
    }
    path = tmp / "azure-conv-x0.25.yaml"
    path.write_text(yaml.safe_dump(sc, sort_keys=False))
    return path


def mooncake_scenario_file(tmp: Path, trace: Path, scale: float) -> Path:
    """A Mooncake trace replayed with its prefix blocks, its tokens scaled onto the tiny model (blocks scale with
    them); at each load level its arrivals keep their shape at the level's mean rate."""
    sc = {
        "name": f"mooncake-conversation-x{scale:g}",
        "description": f"the Mooncake conversation trace (2025) with its prefix blocks, tokens scaled by {scale:g}",
        "arrivals": {"process": "trace", "path": str(trace), "format": "mooncake", "block_tokens": 512},
        "llm": {
            "prompt": {"dist": "trace", "column": "input_length"},
            "output": {"dist": "trace", "column": "output_length"},
            "scale": scale,
        },
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 200}],
        "requests": 2000,
    }
    path = tmp / f"mooncake-conv-x{scale:g}.yaml"
    path.write_text(yaml.safe_dump(sc, sort_keys=False))
    return path


def guidellm(
    exe: str,
    folder: Path,
    port: int,
    rates: list[float],
    seconds: int,
    out: Path,
    output_tokens: int = 32,
    client: tuple[str, ...] = (),
) -> Path:
    """GuideLLM at constant rates; `client` prefixes the command (e.g. taskset, to keep it off the engine's CPU)."""
    env = {**os.environ, "GUIDELLM__MAX_WORKER_PROCESSES": "1"}  # 2 CPUs: one client process, not ten
    target = f"kind=openai_http,target=http://127.0.0.1:{port},model={folder},request_format=/v1/completions"
    cmd = [*client, exe, "run", "--backend", target, "--tokenizer", f"kind=huggingface_auto,model={folder}"]
    cmd += ["--data", f"kind=synthetic_text,prompt_tokens=256,output_tokens={output_tokens}"]
    cmd += [
        "--profile",
        f"kind=constant,rate={rates[0]}",
        "--override",
        "profile.rate",
        ",".join(f"{r:g}" for r in rates),
    ]
    cmd += ["--constraint", f"kind=max_duration,seconds={seconds}", "--output", f"kind=json,path={out}"]
    cmd += ["--disable-progress"]
    run(cmd, env=env, cwd=out.parent, stdout=subprocess.DEVNULL)
    return out


def aiperf(
    exe: str,
    folder: Path,
    port: int,
    rate: float,
    count: int,
    out: Path,
    output_tokens: int = 32,
    client: tuple[str, ...] = (),
) -> Path:
    """AIPerf at one Poisson rate; `client` prefixes the command as for guidellm()."""
    cmd = [*client, exe, "profile", "--model", str(folder), "--url", f"http://127.0.0.1:{port}"]
    cmd += ["--endpoint-type", "completions", "--streaming", "--isl", "256", "--osl", str(output_tokens)]
    cmd += ["--request-rate", f"{rate:g}"]
    cmd += [
        "--request-count",
        str(count),
        "--tokenizer",
        str(folder),
        "--artifact-dir",
        str(out),
        "--ui-type",
        "none",
    ]
    run(cmd, cwd=out.parent, stdout=subprocess.DEVNULL)
    return out / "profile_export_aiperf.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--trace", type=Path, default=ROOT.parent / "shared" / "traces" / "azure-llm-2023-conv.csv"
    )
    ap.add_argument("--runs", type=Path, default=ROOT / "data" / "runs")
    ap.add_argument("--validations", type=Path, default=ROOT / "data" / "validations")
    ap.add_argument("--benchmarks", type=Path, default=ROOT / "data" / "benchmarks")
    ap.add_argument("--raw", type=Path, help="keep the tools' own result files here")
    ap.add_argument("--guidellm", help="the guidellm executable (its own virtualenv)")
    ap.add_argument("--aiperf", help="the aiperf executable (its own virtualenv)")
    ap.add_argument("--seconds", type=int, default=60, help="live seconds per load level")
    ap.add_argument("--point-seconds", type=int, default=20, help="at most this long per curve point")
    ap.add_argument("--skip-validation", action="store_true")
    args = ap.parse_args()
    for d in (args.runs, args.validations, args.benchmarks):
        d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        raw = args.raw or tmp / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        folder = build(tmp / "tiny-llm")
        port, proxy_port = free_port(), free_port()
        log = (tmp / "serve.log").open("wb")
        engine = subprocess.Popen(
            serve_command(folder, port, ENGINE_KNOBS), stdout=log, stderr=subprocess.STDOUT
        )
        proxy = None
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", engine, timeout_s=180)
            url = f"http://127.0.0.1:{port}"
            params = ["engine=transformers-serve", f"version={importlib.metadata.version('transformers')}"]
            params += ["continuous_batching=true", "device_kind=cpu"]
            params += [f"{k.removeprefix('--')}={v}" for k, v in ENGINE_KNOBS.items()]
            pargs = [x for p in params for x in ("--engine-param", p)]
            cmd = [
                FLEETWISE,
                "measure",
                "--endpoint",
                url,
                "--model",
                str(folder),
                "--prompt-tokens",
                "64,256,1024",
            ]
            cmd += ["--concurrency", "1,2,4,8,16,32", "--output-tokens", "32"]
            cmd += ["--max-seconds-per-point", str(args.point_seconds), "--out", str(args.runs), *pargs]
            run(cmd, stdout=subprocess.DEVNULL)
            run_file = newest(args.runs, "llm-engine-cpu-*.json")
            if not args.skip_validation:
                cmd = [
                    FLEETWISE,
                    "validate",
                    "--run",
                    str(run_file),
                    "--scenario",
                    str(scenario_file(tmp, args.trace)),
                ]
                cmd += ["--endpoint", url, "--model", str(folder), "--load", "0.3,0.5,0.7,0.85"]
                cmd += [
                    "--seconds",
                    str(args.seconds),
                    "--saturation-seconds",
                    "30",
                    "--out",
                    str(args.validations),
                ]
                cmd += [*KNOB_ARGS, "--knobs-source", KNOBS_SOURCE, *pargs]
                run(cmd)
            results = []
            if args.guidellm:
                proxy = subprocess.Popen(
                    [sys.executable, str(ROOT / "benchmarks" / "eos_passthrough.py"), "--listen", str(proxy_port),
                     "--target", str(port)]
                )  # fmt: skip
                time.sleep(1.0)
                results.append(
                    guidellm(
                        args.guidellm, folder, proxy_port, [1, 2, 4], 30, raw / "guidellm-benchmarks.json"
                    )
                )
            if args.aiperf:
                results.append(aiperf(args.aiperf, folder, port, 5, 150, raw / "aiperf"))
            for res in results:
                run(
                    [
                        FLEETWISE,
                        "import",
                        str(res),
                        "--out",
                        str(args.benchmarks),
                        "--hardware",
                        "this machine (2-core AMD EPYC VM), CPU",
                    ]
                )
                run([FLEETWISE, "validate", "--benchmark", str(res), "--run", str(run_file), *KNOB_ARGS])
            print(json.dumps({"run": str(run_file), "raw": str(raw)}))
        finally:
            if proxy is not None:
                stop(proxy)
            stop(engine)
            log.close()


if __name__ == "__main__":
    main()
