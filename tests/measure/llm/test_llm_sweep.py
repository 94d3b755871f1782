"""In-process LLM sweeps: the three step kinds measured with the batch discipline, the run-level facts, the
refusals before measuring, and the batch planner saying why it cannot use the run."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from measure.core.parsing import SweepError
from measure.core.steady_state import SamplingConfig
from measure.inprocess.plan import SweepRequest
from measure.llm.plan import plan_llm_sweep
from measure.llm.sweep import execute_llm_sweep
from measure.run import LlmGrid, MemoryFacts, Run, dump_run, load_run, parse_run, run_json_schema
from measure.workloads.decoder_shape import PRESETS
from planner.fleet.options import SizingError, build_options
from planner.serving.service import ServiceError
from planner.serving.service_from import from_run

FAST = SamplingConfig(min_seconds=0.2, max_seconds=1.5, min_iterations=20)
GRID = LlmGrid(
    mode="in-process",
    prefill_batches=[1, 4],
    prompt_tokens=[16, 512],
    decode_batches=[1, 16],
    contexts=[16, 2048],
    mixed_batches=[4],
    mixed_context=128,
    chunks=[16, 512],
)


def _request(workload: str = "llm", params: dict | None = None, **kw: object) -> SweepRequest:  # type: ignore[type-arg]
    return SweepRequest(
        workload=workload,
        params={"preset": "tiny"} if params is None else params,
        device="cpu",
        precisions=["fp32", "bf16"],
        batch_sizes=[1],
        sampling=FAST,
        idle_seconds=0,
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def tiny_run() -> Run:
    return execute_llm_sweep(plan_llm_sweep(_request(), GRID, command=["test"])).run


def _p50(run: Run, precision: str, phase: str, batch: int, **where: int) -> float:
    (p,) = [
        p
        for p in run.points
        if (p.precision, p.phase, p.batch_size) == (precision, phase, batch)
        and all(getattr(p, k) == v for k, v in where.items())
    ]
    assert p.latency_ms is not None, p.reason
    return p.latency_ms.median


@pytest.mark.slow
def test_the_tiny_decoder_gives_all_three_step_kinds_in_a_run_that_validates(tiny_run: Run) -> None:
    run = parse_run(dump_run(tiny_run))
    jsonschema.validate(json.loads(dump_run(run)), run_json_schema())
    assert run.sweep.complete and run.sweep.llm == GRID and run.is_llm
    kinds = {(p.precision, p.phase) for p in run.points}
    assert kinds == {(pr, ph) for pr in ("fp32", "bf16") for ph in ("prefill", "decode", "mixed")}
    assert all(p.status in ("ok", "unstable") and p.source == "in-process" for p in run.points)
    # as measured: 4 x 512 prompt tokens cost far more than 16; 16 sequences over 2048 cached tokens more than 1 over 16
    assert _p50(run, "fp32", "prefill", 4, seq_len=512) > 3 * _p50(run, "fp32", "prefill", 4, seq_len=16)
    assert _p50(run, "fp32", "decode", 16, context_tokens=2048) > 2 * _p50(
        run, "fp32", "decode", 1, context_tokens=16
    )
    assert _p50(run, "fp32", "mixed", 4, chunk_tokens=512) > _p50(run, "fp32", "mixed", 4, chunk_tokens=16)
    prefill = next(p for p in run.points if p.phase == "prefill" and p.batch_size == 4 and p.seq_len == 512)
    assert prefill.tokens_per_step == 2048 and prefill.throughput_units_per_s is not None
    assert prefill.throughput_units_per_s == pytest.approx(2048 * 1000 / prefill.latency_ms.mean)  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_run_carries_kv_facts_energy_per_phase_or_why_not_and_the_quality_proxy(tiny_run: Run) -> None:
    facts = tiny_run.llm
    assert (
        facts is not None
        and facts.shape is not None
        and facts.shape.parameters == PRESETS["tiny"].parameters()
    )
    mem = {m.precision: m for m in facts.memory}
    assert isinstance(mem["fp32"], MemoryFacts)
    assert (
        mem["fp32"].kv_bytes_per_token
        == PRESETS["tiny"].kv_bytes_per_token(4)
        == 2 * mem["bf16"].kv_bytes_per_token
    )
    assert mem["fp32"].weight_bytes == 4 * PRESETS["tiny"].parameters()
    assert isinstance(facts.device_memory_bytes, int) and isinstance(mem["fp32"].kv_tokens_fit, int)
    assert mem["fp32"].kv_tokens_fit <= 0.9 * facts.device_memory_bytes / mem["fp32"].kv_bytes_per_token
    phases = {(e.precision, e.phase) for e in facts.energy}
    assert ("fp32", "decode") in phases and ("bf16", "prefill") in phases
    if facts.energy_note is not None:  # no sensor here: every phase says why, nothing is estimated
        assert all(not isinstance(e.j_per_token, float) for e in facts.energy)
    assert tiny_run.quality is not None
    q = {e.precision: e for e in tiny_run.quality.entries}
    assert q["fp32"].rel_l2_error == 0 and q["bf16"].status == "ok" and q["bf16"].top1_agreement is not None


@pytest.mark.slow
def test_the_batch_planner_says_it_cannot_serve_an_llm_run(tiny_run: Run, tmp_path: Path) -> None:
    with pytest.raises(ServiceError, match="LLM prefill/decode"):
        from_run(tiny_run, "fp32")
    path = tmp_path / "llm.json"
    path.write_text(dump_run(tiny_run))
    with pytest.raises(SizingError, match="measured LLM prefill/decode steps"):
        build_options([path], [], None, None, None, "round-robin")


def test_grids_that_cannot_run_are_refused_before_measuring(tmp_path: Path) -> None:
    too_long = GRID.model_copy(update={"contexts": [PRESETS["tiny"].max_position_embeddings]})
    with pytest.raises(SweepError, match="does not fit"):
        plan_llm_sweep(_request(), too_long)
    with pytest.raises(SweepError, match="pacing"):
        plan_llm_sweep(_request(pacing="gaps=0,1ms"), GRID)
    with pytest.raises(SweepError, match="unknown parameter"):
        plan_llm_sweep(_request(params={"preset": "tiny", "layers": 3}), GRID)
    with pytest.raises(SweepError, match="unknown preset"):
        plan_llm_sweep(_request(params={"preset": "70b"}), GRID)
    with pytest.raises(SweepError, match="memory fraction"):
        plan_llm_sweep(_request(), GRID, memory_fraction=1.5)
    with pytest.raises(SweepError, match="does not exist"):
        plan_llm_sweep(_request(f"hf:{tmp_path / 'nope'}", params={}), GRID)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "auto_map": {"AutoModel": "evil.Model"}}')
    with pytest.raises(SweepError, match="not a Llama-style"):
        plan_llm_sweep(_request(f"hf-config:{tmp_path / 'config.json'}", params={}), GRID)


def test_an_hf_config_gives_the_architecture_with_random_weights_and_no_quality_proxy(tmp_path: Path) -> None:
    cfg = {
        "model_type": "llama",
        "num_hidden_layers": 1,
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "intermediate_size": 128,
        "vocab_size": 300,
        "max_position_embeddings": 256,
    }
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    grid = LlmGrid(
        mode="in-process", prefill_batches=[1], prompt_tokens=[8], decode_batches=[2], contexts=[8]
    )
    req = _request(f"hf-config:{tmp_path / 'config.json'}", params={})
    run = execute_llm_sweep(plan_llm_sweep(req, grid, command=["t"])).run
    assert run.llm is not None and run.llm.shape is not None and run.llm.shape.num_key_value_heads == 1
    assert run.llm.weights == "random" and "architecture comes from the config" in run.llm.weights_note
    assert run.quality is not None and all(e.status == "unsupported" for e in run.quality.entries)
    assert "random weights" in (run.quality.entries[0].reason or "")
    assert [p.phase for p in run.points if p.precision == "fp32"] == ["prefill", "decode"]


def test_the_cli_refuses_a_bad_llm_grid_with_one_line_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    for args in (
        ["--context", "5000"],
        ["--prompt-tokens", "0"],
        ["--memory-fraction", "0"],
        ["--chunk", "abc"],
        ["--resume", str(tmp_path / "x.json")],
    ):
        res = CliRunner().invoke(app, ["measure", "-w", "llm", "-p", "preset=tiny", "--out", str(out), *args])
        assert res.exit_code == 2, (args, res.output)
        assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) == 1, (
            res.output
        )
    assert not out.exists() or not list(out.iterdir())


@pytest.mark.slow
def test_the_cli_measures_the_tiny_decoder_and_show_prints_the_three_tables(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = [
        "measure", "-w", "llm", "-p", "preset=tiny", "--prefill-batch", "1", "--prompt-tokens", "16",
        "--decode-batch", "2", "--context", "16", "--mixed-batch", "2", "--mixed-context", "16", "--chunk", "8",
        "--idle-seconds", "0", "--min-seconds-per-point", "0.1", "--max-seconds-per-point", "0.5", "--out", str(out),
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    (path,) = out.glob("llm-cpu-*.json")
    shown = CliRunner().invoke(app, ["show", str(path)])
    assert shown.exit_code == 0
    for title in ("prefill: prefill step", "decode: decode step", "mixed: mixed step", "KV bytes/token"):
        assert title in shown.output
    assert load_run(path).llm is not None
