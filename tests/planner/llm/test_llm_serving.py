"""Generative scenarios and `fleetwise simulate` on an LLM run: what is validated, what the result holds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from planner.llm.engine import EngineConfig
from planner.llm.simulation import llm_requests, run_llm_simulation
from planner.traffic.scenario import SCENARIO_SCHEMA_VERSION, ScenarioError, parse_scenario
from tests.conftest import shipped_files
from tests.planner.llm.test_llm_engine import synthetic_model

CHAT = {
    "name": "chat",
    "arrivals": {"process": "poisson", "rate_rps": 20},
    "llm": {
        "prompt": {"dist": "lognormal", "median": 200, "sigma": 0.5, "cap": 1000},
        "output": {"dist": "uniform", "low": 4, "high": 40},
    },
    "slo": [
        {"metric": "ttft", "percentile": 99, "threshold_ms": 100},
        {"metric": "tpot", "percentile": 90, "threshold_ms": 50},
    ],
    "requests": 3000,
}


def test_generative_scenarios_are_validated_and_version_1_files_still_read() -> None:
    sc = parse_scenario(CHAT)
    assert sc.schema_version == SCENARIO_SCHEMA_VERSION and sc.llm is not None
    bad = [
        (
            {**CHAT, "slo": [{"metric": "latency", "percentile": 99, "threshold_ms": 1}]},
            "generative requests take",
        ),
        ({k: v for k, v in CHAT.items() if k != "llm"}, "need generative requests"),
        ({**CHAT, "llm": {**CHAT["llm"], "prompt": {"dist": "trace"}}}, "need trace arrivals"),  # type: ignore[dict-item]
        ({**CHAT, "llm": {**CHAT["llm"], "scale": 0}}, "greater than 0"),  # type: ignore[dict-item]
    ]
    for data, msg in bad:
        with pytest.raises(ScenarioError, match=msg):
            parse_scenario(data)
    old = {"schema_version": 1, "name": "x", "arrivals": {"process": "poisson", "rate_rps": 1}, "requests": 5}
    assert parse_scenario(old).schema_version == SCENARIO_SCHEMA_VERSION


def test_token_lengths_follow_the_scenario_and_the_scale_is_applied_and_stated() -> None:
    sc = parse_scenario({**CHAT, "llm": {**CHAT["llm"], "scale": 0.5}})  # type: ignore[dict-item]
    reqs, window, notes = llm_requests(sc)
    assert reqs.arrival_s.size == 3000 and window > 0
    assert reqs.output.min() >= 4 // 2 and reqs.output.max() <= 20 and reqs.prompt.max() <= 500
    assert any("scaled by 0.5" in n for n in notes)


def test_a_trace_replays_its_own_token_lengths(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        + "".join(f"2023-11-16 18:00:{i:02d}.0,{100 + i},{5 + i}\n" for i in range(30))
    )
    sc = parse_scenario(
        {
            "name": "replay",
            "arrivals": {"process": "trace", "path": str(tmp_path / "t.csv")},
            "llm": {"prompt": {"dist": "trace"}, "output": {"dist": "trace", "column": "GeneratedTokens"}},
            "requests": 30,
        }
    )
    reqs, _, _ = llm_requests(sc)
    assert reqs.prompt.tolist() == [100 + i for i in range(30)] and reqs.output.tolist() == [
        5 + i for i in range(30)
    ]


def test_more_replicas_lower_the_tails_and_an_overload_says_stable_false() -> None:
    from tests.conftest import make_run

    model = synthetic_model(spread=0.05)
    run = make_run()
    sc = parse_scenario({**CHAT, "arrivals": {"process": "poisson", "rate_rps": 150}})
    cfg = EngineConfig(max_num_seqs=8, kv_blocks=2000)
    one = run_llm_simulation(sc, model, cfg, 1, "round-robin", run)
    four = run_llm_simulation(sc, model, cfg, 4, "least-outstanding", run)
    assert (
        not one.stable
        and one.throughput_when_saturated_rps is not None
        and one.throughput_when_saturated_rps < 150
    )
    assert four.stable and four.ttft_ms is not None and one.ttft_ms is not None
    assert four.ttft_ms.p99 < one.ttft_ms.p99 / 5
    assert four.goodput_rps is not None and four.goodput_rps <= four.offered_rps
    assert "energy unavailable" in four.energy_note and four.energy_j_per_request is None
    kv = run_llm_simulation(sc, model, EngineConfig(max_num_seqs=8, kv_blocks=80), 4, "least-kv", run)
    assert kv.preemptions > 0 and 0 < kv.kv_cache_utilization <= 1


def test_fleetwise_simulate_serves_a_shipped_llm_run_and_documents_its_json(tmp_path: Path) -> None:
    (llm,) = [f for f in shipped_files() if f.name.startswith("llm-cpu-")]
    path = tmp_path / "chat.yaml"
    path.write_text(json.dumps({**CHAT, "requests": 800}))
    res = CliRunner().invoke(
        app,
        [
            "simulate",
            "--run",
            str(llm),
            "--precision",
            "fp32",
            "--scenario",
            str(path),
            "--replicas",
            "2",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in (
        "ttft_ms",
        "tpot_ms",
        "itl_ms",
        "e2e_ms",
        "goodput_rps",
        "output_tokens_per_s",
        "preemptions",
        "slo",
    ):
        assert key in out
    assert out["inputs"]["kv_blocks_from"].startswith("the run's KV tokens that fit")
    docs = (Path(__file__).resolve().parents[3] / "docs" / "llm-serving.md").read_text()
    for key in out:
        assert f"`{key}`" in docs, f"{key} is not documented in docs/llm-serving.md"
    text = CliRunner().invoke(
        app, ["simulate", "--run", str(llm), "--precision", "fp32", "--scenario", str(path)]
    )
    assert text.exit_code == 0 and "TTFT" in text.output and "SLO p99 ttft" in text.output
    bad = CliRunner().invoke(
        app,
        [
            "simulate",
            "--run",
            str(llm),
            "--precision",
            "fp32",
            "--scenario",
            str(path),
            "--router",
            "central",
        ],
    )
    assert bad.exit_code == 2 and "router 'central' does not apply to LLM serving" in bad.output
    engine = next(f for f in shipped_files() if f.name.startswith("llm-engine-"))
    no_kv = CliRunner().invoke(app, ["simulate", "--run", str(engine), "--scenario", str(path)])
    assert no_kv.exit_code == 2 and "--kv-blocks" in no_kv.output
    ok = CliRunner().invoke(
        app, ["simulate", "--run", str(engine), "--scenario", str(path), "--kv-blocks", "4096"]
    )
    assert ok.exit_code == 0 and "engine run" in ok.output
    np.testing.assert_equal(out["requests_total"], 800)


def test_itl_leaves_the_warm_up_requests_out_as_ttft_tpot_and_e2e_do() -> None:
    from planner.llm.engine import simulate
    from tests.conftest import make_run

    model = synthetic_model(spread=0.05)
    overload = {"arrivals": {"process": "poisson", "rate_rps": 300}, "requests": 200, "warmup_fraction": 0.5}
    sc = parse_scenario({**CHAT, **overload})
    cfg = EngineConfig(max_num_seqs=64, kv_blocks=20000)
    got = run_llm_simulation(sc, model, cfg, 1, "round-robin", make_run())
    reqs, _, _ = llm_requests(sc)
    tr = simulate(reqs, model, cfg, 1, "round-robin", seed=sc.seed)
    gaps, whose = np.asarray(tr.itl_ms), np.asarray(tr.itl_request)
    assert np.array_equal(np.bincount(whose, minlength=reqs.output.size), reqs.output - 1)  # one gap a token
    skip = int(reqs.arrival_s.size * sc.warmup_fraction)
    measured, pooled = gaps[whose >= skip].mean(), gaps.mean()
    assert abs(measured - pooled) > 0.05 * pooled  # an overload's warm-up gaps differ from the rest's
    assert got.itl_ms is not None and got.itl_ms.mean == pytest.approx(measured, rel=1e-9)
