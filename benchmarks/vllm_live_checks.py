"""The LLM engine model held against vLLM itself, with the load generator kept off the engine's CPU.

One session of the tiny model served by vLLM (benchmarks/vllm_engine.py: its own venv, V1 engine, chunked
prefill, prefix caching off so that every prompt is computed as the model assumes), pinned to CPU 0 (`taskset`,
and vLLM's OpenMP threads bound there); every fleetwise command that sends traffic pinned to CPU 1:
1. measure its curves through `fleetwise measure --endpoint` (concurrency 1..64, prompt lengths chosen from the
   validation's traffic by `--scenario`, 64 output tokens: about the traffic's mean), each setting judged on its
   steady window and the engine's /metrics read at that window's edges;
2. `fleetwise validate` it live: open-loop streams at 0.3/0.5/0.7/0.85 of its measured sustainable rate, token
   lengths of the Azure conversation trace scaled by 0.25 (the trace is read, never copied), with the knobs the
   engine reports (its /metrics cache_config_info: block size and KV blocks);
3. with --guidellm / --aiperf: GuideLLM at constant rates and AIPerf at one Poisson rate against the same
   engine (prompts 256 tokens, 64 output tokens; `ignore_eos` is accepted by vLLM, so no proxy), pinned to the
   client CPU as well; both results imported (`fleetwise import`) and predicted from the run's curves
   (`fleetwise validate --benchmark`). `--run FILE` skips 1 and 2 and predicts the tools' traffic from that run;
4. with --own-loads: fleetwise's own sender at the tools' traffic (256 / 64 tokens, Poisson) at those fractions
   of the sustainable rate, so a tail the tools report can be told apart from a tail of the tools' clients.

With --prefix-caching the engine runs with automatic prefix caching on; step 1 also times prefill behind cached
prefixes (--cached-prefix), and step 2 replays the Mooncake conversation trace (--mooncake, tokens scaled by
--mooncake-scale) with its prefix blocks, the model's cache on, both sides' hit shares in the file. The curves'
prompt grid still comes from the Azure lengths: a Mooncake prompt past it is chunked within the 2,048-token budget.

    python benchmarks/vllm_live_checks.py [--runs data/runs --validations data/validations]
        [--guidellm EXE --aiperf EXE --benchmarks data/benchmarks --raw DIR] [--run FILE] [--own-loads 0.15,0.3]
        [--prefix-caching [--mooncake FILE --mooncake-scale 0.03125 --cached-prefix 256,1024,2048]]

Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.llm_live_checks import aiperf, guidellm, mooncake_scenario_file, newest, run, scenario_file
from benchmarks.served import ROOT, free_port, stop, wait_healthy
from benchmarks.tiny_llm import build
from benchmarks.vllm_engine import START_TIMEOUT_S, VENV, environment, serve_command
from benchmarks.vllm_engine import build as build_venv

FLEETWISE = str(Path(sys.executable).with_name("fleetwise"))
ENGINE_CPUS, CLIENT_CPUS = "0", "1"
KNOBS = {"--max-num-seqs": "256", "--max-num-batched-tokens": "2048"}
TOOLS_TRAFFIC = {
    "name": "tools-traffic-256-64",
    "description": "the traffic GuideLLM and AIPerf are asked for here: 256 prompt and 64 output tokens, Poisson",
    "arrivals": {"process": "poisson", "rate_rps": 10},
    "llm": {"prompt": {"dist": "fixed", "value": 256}, "output": {"dist": "fixed", "value": 64}},
    "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 200}],
    "requests": 600,
}


def cache_config(url: str) -> dict[str, str]:
    """The engine's own cache configuration, from its /metrics (block size, KV blocks)."""
    text = urllib.request.urlopen(url + "/metrics", timeout=10).read(4 << 20).decode()
    line = next(x for x in text.splitlines() if x.startswith("vllm:cache_config_info{"))
    body = line[line.index("{") + 1 : line.rindex("}")]
    return dict(kv.split("=", 1) for kv in body.replace('"', "").split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--trace", type=Path, default=ROOT.parent / "shared" / "traces" / "azure-llm-2023-conv.csv"
    )
    ap.add_argument("--runs", type=Path, default=ROOT / "data" / "runs")
    ap.add_argument("--validations", type=Path, default=ROOT / "data" / "validations")
    ap.add_argument("--seconds", type=int, default=60, help="live seconds per load level")
    ap.add_argument("--point-seconds", type=int, default=20, help="at most this long per curve point")
    ap.add_argument("--guidellm", help="the guidellm executable (its own virtualenv)")
    ap.add_argument("--aiperf", help="the aiperf executable (its own virtualenv)")
    ap.add_argument("--guidellm-rates", default="5,10,20", help="GuideLLM's constant rates, req/s")
    ap.add_argument("--aiperf-rate", type=float, default=10.0, help="AIPerf's Poisson rate, req/s")
    ap.add_argument("--benchmarks", type=Path, default=ROOT / "data" / "benchmarks")
    ap.add_argument("--raw", type=Path, help="keep the tools' own result files here")
    ap.add_argument(
        "--run", type=Path, help="an existing run of this engine: skip measuring and validating it"
    )
    ap.add_argument("--own-loads", help="fleetwise's own sender at the tools' traffic, at these loads")
    ap.add_argument("--prefix-caching", action="store_true", help="the engine and the model cache prefixes")
    ap.add_argument(
        "--mooncake", type=Path, default=ROOT.parent / "shared" / "traces" / "mooncake-conversation.jsonl"
    )
    ap.add_argument("--mooncake-scale", type=float, default=1 / 32, help="tokens (and blocks) scaled by this")
    ap.add_argument("--cached-prefix", default="256,1024,2048", help="prefill timed behind these prefixes")
    ap.add_argument("--loads", default="0.3,0.5,0.7,0.85")
    args = ap.parse_args()
    caching = bool(args.prefix_caching)
    why = build_venv()
    if why:
        sys.exit(f"vLLM is not available here: {why}")
    pinned = len(os.sched_getaffinity(0)) >= 2
    client = ["taskset", "-c", CLIENT_CPUS] if pinned else []
    for d in (args.runs, args.validations, args.benchmarks):
        d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        folder = build(tmp / "tiny-llm")
        port = free_port()
        switch = "--enable-prefix-caching" if caching else "--no-enable-prefix-caching"
        extra = (switch, *[x for kv in KNOBS.items() for x in kv])
        cmd = serve_command(folder, port, VENV, extra)
        env = environment()
        if pinned:
            cmd = ["taskset", "-c", ENGINE_CPUS, *cmd]
            env["VLLM_CPU_OMP_THREADS_BIND"] = ENGINE_CPUS
        log = (tmp / "vllm.log").open("wb")
        engine = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_healthy(url + "/health", engine, timeout_s=START_TIMEOUT_S)
            cache = cache_config(url)
            version = subprocess.run(
                [str(VENV / "bin" / "python"), "-c", "import vllm; print(vllm.__version__)"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            params = ["engine=vllm", f"version={version}", "device_kind=cpu"]
            params += [f"enable_prefix_caching={str(caching).lower()}"]
            params += [f"{k.removeprefix('--').replace('-', '_')}={v}" for k, v in KNOBS.items()]
            params += [f"block_size={cache['block_size']}", f"num_gpu_blocks={cache['num_gpu_blocks']}"]
            if pinned:
                params += [f"engine_cpus={ENGINE_CPUS}", f"client_cpus={CLIENT_CPUS}"]
            pargs = [x for p in params for x in ("--engine-param", p)]
            knobs = ["--max-num-seqs", KNOBS["--max-num-seqs"], "--max-num-batched-tokens"]
            knobs += [KNOBS["--max-num-batched-tokens"], "--block-size", cache["block_size"]]
            knobs += ["--kv-blocks", cache["num_gpu_blocks"]]
            run_file = args.run
            if run_file is None:
                scenario = scenario_file(tmp, args.trace)
                measure = [*client, FLEETWISE, "measure", "--endpoint", url, "--model", str(folder)]
                measure += [
                    "--scenario",
                    str(scenario),
                    "--concurrency",
                    "1,2,4,8,16,32,64",
                    "--output-tokens",
                    "64",
                ]
                measure += [
                    "--max-seconds-per-point",
                    str(args.point_seconds),
                    "--out",
                    str(args.runs),
                    *pargs,
                ]
                if caching:
                    measure += ["--cached-prefix", args.cached_prefix, "--cached-suffix", "128"]
                run(measure, stdout=subprocess.DEVNULL)
                run_file = newest(args.runs, "llm-engine-cpu-*.json")
                source = (
                    f"vLLM {version} (CPU, V1 engine, chunked prefill, prefix caching {'on' if caching else 'off'}) "
                    "started with "
                    f"{' '.join(f'{k} {v}' for k, v in KNOBS.items())}; block size and KV blocks as its /metrics "
                    "cache_config_info reports them"
                    + (
                        f"; engine on CPU {ENGINE_CPUS}, load generator on CPU {CLIENT_CPUS} (taskset)"
                        if pinned
                        else ""
                    )
                )
                if caching:
                    scenario = mooncake_scenario_file(tmp, args.mooncake, args.mooncake_scale)
                validate = [*client, FLEETWISE, "validate", "--run", str(run_file)]
                validate += ["--prefix-caching"] if caching else []
                validate += [
                    "--scenario",
                    str(scenario),
                    "--endpoint",
                    url,
                    "--model",
                    str(folder),
                ]
                validate += [
                    "--load",
                    args.loads,
                    "--seconds",
                    str(args.seconds),
                    "--saturation-seconds",
                    "30",
                ]
                validate += ["--out", str(args.validations), *knobs, "--knobs-source", source, *pargs]
                run(validate)
            print(f"run {run_file}")
            raw = args.raw or tmp / "raw"
            raw.mkdir(parents=True, exist_ok=True)
            results = []
            if args.guidellm:
                rates = [float(r) for r in args.guidellm_rates.split(",")]
                out = raw / "guidellm-benchmarks.json"
                results.append(guidellm(args.guidellm, folder, port, rates, 30, out, 64, tuple(client)))
            if args.aiperf:
                count = int(args.aiperf_rate * 30)
                out = raw / "aiperf"
                results.append(
                    aiperf(args.aiperf, folder, port, args.aiperf_rate, count, out, 64, tuple(client))
                )
            hardware = "this machine (2-core AMD EPYC VM), CPU" + (
                f"; vLLM on CPU {ENGINE_CPUS}, the tool on CPU {CLIENT_CPUS}" if pinned else ""
            )
            for res in results:
                run([FLEETWISE, "import", str(res), "--out", str(args.benchmarks), "--hardware", hardware])
                check = [FLEETWISE, "validate", "--benchmark", str(res), "--run", str(run_file)]
                run([*check, *knobs])
            if args.own_loads:
                fixed = tmp / "tools-traffic.yaml"
                fixed.write_text(yaml.safe_dump(TOOLS_TRAFFIC, sort_keys=False))
                own = [*client, FLEETWISE, "validate", "--run", str(run_file), "--scenario", str(fixed)]
                own += [
                    "--endpoint",
                    url,
                    "--model",
                    str(folder),
                    "--load",
                    args.own_loads,
                    "--seconds",
                    "40",
                ]
                own += ["--saturation-seconds", "20", "--out", str(args.validations), *knobs, *pargs]
                run(own)
        finally:
            stop(engine)
            log.close()


if __name__ == "__main__":
    main()
