"""Disaggregated prefill and decode, live: two vLLM 0.32.0 CPU engines joined by vLLM's ExampleConnector (the KV
of whole blocks written to a shared folder by the prefill engine and read by the decode engine), against the
engine model's prediction (planner/llm/disagg.py) from the shipped vLLM run's step times.

The prefill engine runs on CPU 0 and the decode engine on CPU 1 (taskset, their OpenMP threads bound there),
with the shipped run's knobs; this script sends from CPU 0, as vLLM's P/D proxies do: each request goes to the
prefill engine with max_tokens 1, then, as that answer ends, streams from the decode engine. Prompts are
2 x 128 + 1 token ids of their own (the connector moves whole 128-token blocks, so the decode engine computes the
last prompt token, as the model assumes; no prefix is shared), 32 output tokens (ignore_eos).

1. Isolated requests (one at a time) give the link's latency: the median of measured TTFT less the model's with
   no link. That figure (the disk write and read, the proxy's second hop) is the only one taken from this check.
2. Poisson traffic at each `--rates` for `--seconds`: TTFT, TPOT and E2E p50 / p99, measured and predicted at the
   very send times.

    python benchmarks/vllm_pd_live.py [--rates 5,10,20] [--seconds 30]

Nothing else may run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import free_port, stop, wait_healthy
from benchmarks.tiny_llm import build
from benchmarks.vllm_engine import START_TIMEOUT_S, VENV, environment, serve_command
from benchmarks.vllm_engine import build as build_venv
from measure.engine_client import aio
from measure.engine_client.http import Endpoint, StreamResult
from measure.run import load_run
from planner.llm.disagg import KvLink, Pool, simulate_pd
from planner.llm.engine import EngineConfig, LlmRequests
from planner.llm.steps import step_model

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
KNOBS = ("--max-num-seqs", "256", "--max-num-batched-tokens", "2048", "--no-enable-prefix-caching")
PROMPT, OUTPUT, BLOCK = 257, 32, 128
KV_BYTES = 1024  # the tiny model: 2 layers x K and V x 2 KV heads x 32 dims x 4 bytes


def prompt_ids(i: int) -> list[int]:
    """A prompt of its own: token ids above the low ids tokenizers keep for special tokens."""
    rng = np.random.default_rng(10_000 + i)
    return [int(x) for x in rng.integers(300, 556, PROMPT)]


async def one(
    prefill: aio.Pool, decode: aio.Pool, model: str, i: int, at: float, t0: float
) -> dict[str, float]:
    """Prefill (1 token) then decode (streamed), as a P/D proxy does; times from `at` (the planned send)."""
    await asyncio.sleep(max(0.0, t0 + at - time.perf_counter()))
    sent = time.perf_counter()
    p = await aio.stream_completion(prefill, model, prompt_ids(i), 1, 120.0, ignore_eos=True)
    if p.error:
        return {"error": 1.0}
    d: StreamResult = await aio.stream_completion(
        decode, model, prompt_ids(i), OUTPUT, 120.0, ignore_eos=True
    )
    if d.error or len(d.token_times) < 2:
        return {"error": 1.0}
    first, last = d.token_times[0], d.token_times[-1]
    return {
        "sent": sent - t0,
        "ttft": first - sent,
        "e2e": last - sent,
        "tpot": (last - first) / (len(d.token_times) - 1),
        "tokens": float(len(d.token_times)),
    }


async def traffic(urls: list[str], model: str, times: list[float], first: int) -> list[dict[str, float]]:
    prefill, decode = (aio.Pool(Endpoint.parse(u)) for u in urls)
    t0 = time.perf_counter()
    try:
        return list(
            await asyncio.gather(
                *(one(prefill, decode, model, first + k, at, t0) for k, at in enumerate(times))
            )
        )
    finally:
        prefill.close()
        decode.close()


def predict(sent: list[float], link_ms: float) -> dict[str, np.ndarray]:
    run = load_run(RUN)
    model = step_model(run, None)
    cfg = EngineConfig(256, 2048, True, BLOCK, 8192)
    n = len(sent)
    reqs = LlmRequests(np.asarray(sent), np.full(n, PROMPT), np.full(n, OUTPUT))
    pd = simulate_pd(
        reqs, Pool(model, cfg, 1), Pool(model, cfg, 1), KvLink(1000.0, link_ms, KV_BYTES, "measured")
    )
    t = np.asarray(sent)
    ttft, e2e = pd.trace.first_s - t, pd.trace.finish_s - t
    return {"ttft": ttft, "e2e": e2e, "tpot": (e2e - ttft) / (OUTPUT - 1)}


def pct(x: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(x, 50)) * 1000, float(np.percentile(x, 99)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="5,10,20")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--isolated", type=int, default=20)
    args = ap.parse_args()
    why = build_venv()
    if why:
        sys.exit(f"vLLM is not available here: {why}")
    pinned = len(os.sched_getaffinity(0)) >= 2
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        folder = build(tmp / "tiny-llm")
        (tmp / "kv").mkdir()
        kv = {"kv_connector": "ExampleConnector", "kv_role": "kv_both"}
        kv["kv_connector_extra_config"] = {"shared_storage_path": str(tmp / "kv")}  # type: ignore[assignment]
        log = (tmp / "vllm.log").open("wb")
        procs, urls = [], []
        try:
            for cpu in ("0", "1"):
                port = free_port()
                cmd = serve_command(folder, port, VENV, (*KNOBS, "--kv-transfer-config", json.dumps(kv)))
                env = environment()
                if pinned:
                    cmd = ["taskset", "-c", cpu, *cmd]
                    env["VLLM_CPU_OMP_THREADS_BIND"] = cpu
                procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
                urls.append(f"http://127.0.0.1:{port}")
            for p, u in zip(procs, urls, strict=True):
                wait_healthy(u + "/health", p, timeout_s=START_TIMEOUT_S)
            if pinned:
                os.sched_setaffinity(0, {0})  # the sender beside the prefill engine, as a proxy would be
            model = str(folder)
            asyncio.run(traffic(urls, model, [0.0], 0))  # warm both engines
            alone = asyncio.run(traffic(urls, model, [0.3 * k for k in range(args.isolated)], 1))
            ok = [r for r in alone if "error" not in r]
            base = predict([r["sent"] for r in ok], 0.0)
            link_ms = max(0.0, float(np.median(np.array([r["ttft"] for r in ok]) - base["ttft"])) * 1000)
            print(f"machine: {platform.node()} ({platform.machine()}), {os.cpu_count()} CPUs; vLLM 0.32.0 CPU, "
                  f"ExampleConnector; prefill on CPU 0, decode on CPU 1, the sender on CPU 0")  # fmt: skip
            print(
                f"link latency from {len(ok)} isolated requests: {link_ms:.2f} ms (measured TTFT less the model's)"
            )
            print("| req/s | requests (errors) | TTFT p50 / p99 ms, live | model | TPOT p50 / p99 ms, live | model | "
                  "E2E p50 / p99 ms, live | model |")  # fmt: skip
            print("| --- | --- | --- | --- | --- | --- | --- | --- |")
            first = 1000
            for rate in (float(x) for x in args.rates.split(",")):
                rng = np.random.default_rng(int(rate * 100))
                gaps = rng.exponential(1.0 / rate, int(rate * args.seconds * 1.5) + 10)
                times = [float(x) for x in np.cumsum(gaps) if x < args.seconds]
                got = asyncio.run(traffic(urls, model, times, first))
                first += len(times)
                ok = [r for r in got if "error" not in r]
                pred = predict([r["sent"] for r in ok], link_ms)
                cells = []
                for k in ("ttft", "tpot", "e2e"):
                    live = pct(np.array([r[k] for r in ok]))
                    mod = pct(pred[k])
                    cells += [f"{live[0]:.1f} / {live[1]:.1f}", f"{mod[0]:.1f} / {mod[1]:.1f}"]
                print(
                    f"| {rate:g} | {len(ok)} ({len(got) - len(ok)}) | " + " | ".join(cells) + " |", flush=True
                )
        finally:
            for p in procs:
                stop(p)


if __name__ == "__main__":
    main()
