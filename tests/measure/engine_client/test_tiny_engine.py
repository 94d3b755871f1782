"""The project's own LLM engine: a tiny random-weight Llama served by `transformers serve` on 127.0.0.1,
streaming one chunk per token with the token counts in `usage`; measured through `fleetwise measure
--endpoint`, and its folder measured in-process through `hf:`. Started and stopped by the test (its pid)."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
from benchmarks.served import free_port, patience, stop, wait_healthy
from benchmarks.tiny_llm import build, serve_command
from fleetwise_cli.main import app
from measure.core.parsing import SweepError
from measure.core.steady_state import SamplingConfig
from measure.inprocess.plan import SweepRequest
from measure.llm.plan import plan_llm_sweep
from measure.llm.sweep import execute_llm_sweep
from measure.run import LlmGrid, load_run
from planner.evidence.llm_validation import load_llm_validation

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("llm") / "tiny")


@pytest.fixture(scope="module")
def engine(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("log") / "serve.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(serve_command(folder, port), stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_healthy(f"http://127.0.0.1:{port}/health", proc, timeout_s=patience(120.0))
        except RuntimeError as exc:
            pytest.fail(f"{exc}: {log_path.read_text(errors='replace')[-2000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
        log.close()


def test_the_tiny_engine_streams_one_chunk_per_token(folder: Path, engine: str) -> None:
    config = json.loads((folder / "config.json").read_text())
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert config["vocab_size"] == len(vocab) and config["num_key_value_heads"] == 2
    body = {
        "model": str(folder),
        "prompt": "the fleet serves tokens",
        "max_tokens": 12,
        "stream": True,
        "stream_options": {"include_usage": True},  # OpenAI's rule: usage in a stream only when asked
    }
    joined = []
    for _ in range(3):  # a stream that fell behind joins texts: one that kept up shows one chunk a token
        texts, usage = _stream(engine, body)
        # random weights may end on the end-of-sequence token early: then fewer tokens, and usage says so
        assert 1 <= usage["completion_tokens"] <= 12
        assert (
            1 <= len(texts) <= usage["completion_tokens"]
        )  # every chunk carries text; no token is sent twice
        joined.append(usage["completion_tokens"] - len(texts))
        if joined[-1] in (0, 1):  # the stop token is counted without text
            break
    if patience(1.0) == 1.0:
        # one chunk per token while the stream keeps up; on a busy machine transformers serve joins the texts
        # of a stream that fell behind into one event (read_queue_outputs), which fleetwise records as a usage
        # mismatch: three tries, and a load burst the 1-minute load average has not caught yet, pass on one
        assert joined[-1] in (0, 1), joined


def _stream(engine: str, body: dict) -> tuple[list[dict], dict]:  # type: ignore[type-arg]
    req = urllib.request.Request(
        f"{engine}/v1/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    chunks = []
    with urllib.request.urlopen(req, timeout=60) as resp:
        for raw in resp:
            line = raw.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    texts = [c for c in chunks if c["choices"] and c["choices"][0].get("text")]
    return texts, next(c["usage"] for c in chunks if c.get("usage"))


def test_fleetwise_measures_the_engine_prefill_by_prompt_and_decode_by_concurrency(
    folder: Path, engine: str, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    args = [
        "measure", "--endpoint", engine, "--model", str(folder), "--prompt-tokens", "32,1024",
        "--concurrency", "1,8", "--output-tokens", "24", "--requests", "24",
        "--engine-param", "engine=transformers-serve", "--out", str(out),
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    (path,) = out.glob("llm-engine-*.json")
    run = load_run(path)
    assert (
        run.llm is not None
        and run.llm.engine is not None
        and run.llm.engine.params["engine"] == "transformers-serve"
    )
    prefill = {p.engine.prompt_tokens: p for p in run.points if p.phase == "prefill" and p.engine}
    decode = {
        (p.engine.prompt_tokens, p.batch_size): p for p in run.points if p.phase == "decode" and p.engine
    }
    assert set(prefill) == {32, 1024} and set(decode) == {(32, 1), (32, 8), (1024, 1), (1024, 8)}
    for p in run.points:
        assert p.source == "engine" and p.engine is not None and p.engine.failed == 0, p.engine
        assert p.latency_ms is not None and p.engine.prompt_tokens_reported is not None
    med = {k: p.latency_ms.median for k, p in prefill.items() if p.latency_ms}
    assert med[1024] > med[32]  # TTFT grows with the prompt, as measured
    gaps = {k: p.latency_ms.median for k, p in decode.items() if p.latency_ms}
    assert gaps[(32, 8)] > gaps[(32, 1)]  # eight streams share each decode step

    # the same engine validated live on those curves: open-loop streams, predicted vs measured, a file written
    sc = tmp_path / "chat.yaml"
    sc.write_text(
        "name: chat\narrivals: {process: poisson, rate_rps: 1}\n"
        "llm: {prompt: {dist: uniform, low: 32, high: 1000}, output: {dist: fixed, value: 16}}\nrequests: 400\n"
    )
    val = tmp_path / "validations"
    args = [
        "validate", "--run", str(path), "--scenario", str(sc), "--endpoint", engine, "--model", str(folder),
        "--load", "0.3,0.7", "--seconds", "10", "--saturation-concurrency", "8", "--saturation-seconds", "5",
        "--kv-blocks", "100000", "--out", str(val),
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    (vfile,) = val.glob("llm-validation-*.json")
    v = load_llm_validation(vfile)
    assert v.run_id == run.id and v.sustainable_rps > 0 and [lv.load for lv in v.levels] == [0.3, 0.7]
    for lv in v.levels:
        assert lv.failed == 0 and lv.measured is not None and lv.requests >= 60
        assert lv.rate_rps == pytest.approx(lv.load * v.sustainable_rps)
        assert lv.predicted is None or lv.error_pct  # a stable prediction is compared metric by metric
    # judged, or, on a machine busy enough to move the engine, every level flagged by the canary and named
    assert v.verdict and ("prediction" in v.verdict or all(lv.drift for lv in v.levels)), v.verdict
    assert len(v.canaries) == len(v.levels) + 1


def test_the_engines_folder_measures_in_process_through_hf(folder: Path) -> None:
    grid = LlmGrid(
        mode="in-process", prefill_batches=[1], prompt_tokens=[16], decode_batches=[2], contexts=[16],
        mixed_batches=[2], mixed_context=16, chunks=[8],
    )  # fmt: skip
    req = SweepRequest(
        workload=f"hf:{folder}",
        params={},
        device="cpu",
        precisions=["fp32"],
        batch_sizes=[1],
        sampling=SamplingConfig(min_seconds=0.1, max_seconds=0.5),
        idle_seconds=0,
    )
    run = execute_llm_sweep(plan_llm_sweep(req, grid, command=["t"])).run
    kinds = {p.phase: p for p in run.points}
    assert kinds["prefill"].status in ("ok", "unstable") and kinds["decode"].status in ("ok", "unstable")
    assert kinds["mixed"].status == "unsupported" and "built-in decoder" in (kinds["mixed"].reason or "")
    assert run.llm is not None and run.llm.weights == "loaded"
    assert run.quality is not None and run.quality.entries[0].status == "ok"


def test_a_folder_without_safetensors_is_refused(tmp_path: Path, folder: Path) -> None:
    bare = tmp_path / "bin-only"
    bare.mkdir()
    (bare / "config.json").write_text((folder / "config.json").read_text())
    (bare / "pytorch_model.bin").write_bytes(b"not loaded")
    req = SweepRequest(
        workload=f"hf:{bare}", params={}, device="cpu", precisions=["fp32"], batch_sizes=[1], idle_seconds=0
    )
    grid = LlmGrid(mode="in-process", prefill_batches=[1], prompt_tokens=[8])
    with pytest.raises(SweepError, match="safetensors"):
        plan_llm_sweep(req, grid)
