"""Mooncake-format traces: read with bounds, refused in one line when malformed, replayed with their prefixes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from planner.llm.engine import EngineConfig, simulate
from planner.llm.simulation import llm_requests
from planner.traffic.mooncake import read_mooncake, reused_block_share
from planner.traffic.scenario import ScenarioError, parse_scenario
from tests.conftest import REPO
from tests.planner.llm.test_llm_engine import synthetic_model

SHARED = REPO.parent / "shared" / "traces"


def _write(tmp: Path, rows: list[object]) -> Path:
    path = tmp / "t.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def _row(ts: float, n: int, ids: list[int], out: int = 4) -> dict[str, object]:
    return {"timestamp": ts, "input_length": n, "output_length": out, "hash_ids": ids}


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared traces are not next to this checkout")
def test_the_mooncake_release_reads_as_its_readme_describes() -> None:
    conv = read_mooncake(SHARED / "mooncake-conversation.jsonl", 512)
    assert len(conv) == 12_031 and round(conv.input_length.mean()) == 12_035
    assert round(conv.output_length.mean()) == 343 and round(reused_block_share(conv), 2) == 0.37
    synth = read_mooncake(SHARED / "mooncake-synthetic.jsonl", 512)
    assert len(synth) == 3_993 and round(reused_block_share(synth), 2) == 0.64


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_row(5, 1000, [1]), "one id per 512-token block of the prompt (2 for 1000 tokens), got 1"),
        (_row(5, 1000, [1, -3]), "hash id '-3' is not a whole number"),
        (_row(5, 1000, [1, "2"]), "hash id '2' is not a whole number"),
        (_row(5, 1000, [1, 2**60]), "is not a whole number in 0..2^53"),
        (_row(5, 1000, [1, 2.5]), "is not a whole number"),
        (_row(5, 0, []), "input_length and output_length must be whole numbers"),
        (_row(-1, 10, [1]), "timestamp must be milliseconds"),
        ({"timestamp": 5, "input_length": 10}, "needs the fields"),
        ("[" * 100_000, "not a JSON object"),
        ("{not json", "not a JSON object"),
    ],
)
def test_a_malformed_line_is_refused_in_one_line_naming_it(tmp_path: Path, bad: object, message: str) -> None:
    path = _write(tmp_path, [_row(0, 10, [1]), bad])
    with pytest.raises(ScenarioError) as err:
        read_mooncake(path, 512)
    text = str(err.value)
    assert message in text and "line 2" in text and "\n" not in text


def _scenario(path: Path, requests: int, scale: float = 1.0) -> dict[str, object]:
    return {
        "name": "mc",
        "arrivals": {"process": "trace", "path": str(path), "format": "mooncake", "block_tokens": 32},
        "llm": {
            "prompt": {"dist": "trace", "column": "input_length"},
            "output": {"dist": "trace", "column": "output_length"},
            "scale": scale,
        },
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 500}],
        "requests": requests,
    }


def test_a_replayed_trace_keeps_its_prefixes_and_a_loop_shares_nothing_with_the_last(tmp_path: Path) -> None:
    # two requests share their first 32-token block (id 7); a third shares nothing
    path = _write(tmp_path, [_row(0, 70, [7, 1, 2]), _row(1000, 64, [7, 3]), _row(2000, 40, [4, 5])])
    reqs, _, _ = llm_requests(parse_scenario(_scenario(path, 6)))
    assert reqs.prefix_ids is not None and reqs.prefix_block_tokens == 32
    assert reqs.prefix_ids[:3] == ((7, 1, 2), (7, 3), (4, 5))
    looped = reqs.prefix_ids[3:]
    assert all(set(a).isdisjoint(b) for a in looped for b in reqs.prefix_ids[:3])  # a new loop: new content
    assert looped[0][0] == looped[1][0]  # ... with the same sharing inside it
    halved, _, notes = llm_requests(parse_scenario(_scenario(path, 3, 0.5)))
    assert halved.prefix_block_tokens == 16 and any("16 tokens a hash id" in n for n in notes)


def test_the_cache_finds_what_the_trace_shares(tmp_path: Path) -> None:
    rows = [
        _row(i * 200.0, 96 + 32 * (i % 3), [0, 1] + [100 + i * 10 + j for j in range(1 + i % 3)])
        for i in range(40)
    ]
    path = _write(tmp_path, rows)
    reqs, _, _ = llm_requests(parse_scenario(_scenario(path, 40)))
    on = EngineConfig(max_num_batched_tokens=1024, block_size=16, kv_blocks=10_000, prefix_caching=True)
    off = EngineConfig(max_num_batched_tokens=1024, block_size=16, kv_blocks=10_000)
    hit = simulate(reqs, synthetic_model(), on)
    plain = simulate(reqs, synthetic_model(), off)
    # every request after the first finds ids 0 and 1: 2 trace blocks of 32 tokens = 4 engine blocks of 16
    assert hit.prefix_hit_tokens == 39 * 64 and plain.prefix_hit_tokens == 0
    assert np.all(hit.first_s[1:] - reqs.arrival_s[1:] < plain.first_s[1:] - reqs.arrival_s[1:])


def test_simulate_reports_the_hit_share_and_says_when_the_prefixes_go_unused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fleetwise_cli.main import app

    rows = [_row(i * 300.0, 96, [0, 1, 200 + i]) for i in range(30)]
    sc = tmp_path / "mc.yaml"
    sc.write_text(json.dumps(_scenario(_write(tmp_path, rows), 30)))
    run = REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json"
    base = ["simulate", "--run", str(run), "--scenario", str(sc), "--kv-blocks", "4096", "--json"]
    on = json.loads(CliRunner().invoke(app, [*base, "--prefix-caching"]).stdout)
    off = json.loads(CliRunner().invoke(app, base).stdout)
    # after the first request, 64 of every 96 prompt tokens are cached: 29 x 64 of 30 x 96 looked up
    assert on["prefix_hit_share"] == pytest.approx(29 * 64 / (30 * 96))
    assert off["prefix_hit_share"] is None and any("prefix caching is off" in w for w in off["warnings"])
    assert on["ttft_ms"]["p50"] < off["ttft_ms"]["p50"]
    batch = REPO / "data" / "runs" / "cnn-cpu-20261206T131604Z-5cc0a452679d.json"
    refused = CliRunner().invoke(
        app,
        [
            "simulate",
            "--run",
            str(batch),
            "--scenario",
            str(REPO / "scenarios" / "steady-api.yaml"),
            "--prefix-caching",
        ],
    )
    assert refused.exit_code == 2 and "--prefix-caching applies to LLM runs only" in refused.output


def test_a_cached_prompt_token_costs_no_prefill_energy(tmp_path: Path) -> None:
    from measure.run import load_run
    from measure.run.llm_facts import PhaseEnergy
    from planner.llm.simulation import run_llm_simulation
    from planner.llm.steps import step_model
    from planner.traffic.scenario import load_scenario

    run = load_run(REPO / "data" / "runs" / "llm-cpu-20261129T114852Z-845f38fa643a.json")
    assert run.llm is not None
    energy = [
        PhaseEnergy(precision="fp32", phase="prefill", j_per_token=0.01, points=1),
        PhaseEnergy(precision="fp32", phase="decode", j_per_token=0.1, points=1),
    ]
    run = run.model_copy(update={"llm": run.llm.model_copy(update={"energy": energy})})
    rows = [_row(i * 300.0, 96, [0, 1, 200 + i]) for i in range(30)]
    sc_path = tmp_path / "mc.yaml"
    sc_path.write_text(json.dumps(_scenario(_write(tmp_path, rows), 30)))
    sc, model = load_scenario(sc_path), step_model(run, "fp32")
    on = EngineConfig(block_size=16, kv_blocks=4096, prefix_caching=True)
    off = EngineConfig(block_size=16, kv_blocks=4096)
    a, b = (
        run_llm_simulation(sc, model, on, 1, "round-robin", run),
        run_llm_simulation(sc, model, off, 1, "round-robin", run),
    )
    assert a.energy_j_per_request is not None and b.energy_j_per_request is not None
    # past the first request (in the warm-up) every prompt finds 64 of its 96 tokens cached
    assert b.energy_j_per_request - a.energy_j_per_request == pytest.approx(64 * 0.01)
