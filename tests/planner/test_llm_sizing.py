"""LLM sizing: the fewest replicas meeting TTFT/TPOT SLOs (one fewer misses), a search that stops when more
replicas cannot help, cost split per 1M input and output tokens, and the CLI's LLM path."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from fleetwise_cli.main import app
from measure.run import dump_run
from planner.fleet.prices import load_prices, with_session_prices
from planner.llm.engine import EngineConfig
from planner.llm.simulation import run_llm_simulation
from planner.llm.sizing import LlmOption, size_option
from planner.traffic.scenario import parse_scenario
from tests.conftest import REPO, make_run, shipped_files
from tests.planner.test_llm_engine import _point
from tests.planner.test_llm_serving import CHAT

BOOK = with_session_prices(load_prices(REPO / "data" / "prices.yaml"), {"Test CPU": 2.0}, date(2026, 11, 29))


@pytest.fixture
def llm_run_file(tmp_path: Path) -> Path:
    pts = [
        _point("prefill", b, 2 + 0.01 * b * s, seq=s, spread=0.05) for b in (1, 4) for s in (16, 256, 1024)
    ]
    pts += [_point("decode", b, 1 + 0.1 * b, ctx=c, spread=0.05) for c in (64, 1024) for b in (1, 4, 16, 64)]
    path = tmp_path / "llm.json"
    path.write_text(dump_run(make_run(pts)))
    return path


def test_the_answer_is_the_fewest_replicas_and_one_fewer_misses(llm_run_file: Path) -> None:
    from measure.run import load_run

    run = load_run(llm_run_file)
    sc = parse_scenario({**CHAT, "arrivals": {"process": "poisson", "rate_rps": 120}})
    opt = LlmOption(str(llm_run_file), "fp32", 8, 2048, True)
    got = size_option(sc, opt, run, BOOK, "on_demand", 3000, 64, kv_blocks=4000)
    assert got.meets_slo and got.replicas is not None and got.replicas > 1
    from planner.llm.steps import step_model

    fewer = run_llm_simulation(
        sc,
        step_model(run, "fp32"),
        EngineConfig(8, 2048, True, 16, 4000),
        got.replicas - 1,
        "least-outstanding",
        run,
        3000,
    )
    assert not (fewer.stable and all(c.met for c in fewer.slo))
    assert got.monthly_cost_usd == pytest.approx(got.replicas * 2.0 * 730)
    assert got.usd_per_1m_input_tokens is not None and got.usd_per_1m_output_tokens is not None
    assert got.usd_per_1m_output_tokens_all_in is not None
    assert got.usd_per_1m_output_tokens < got.usd_per_1m_output_tokens_all_in


def test_a_threshold_below_a_lone_requests_prefill_stops_the_search_with_the_reason(
    llm_run_file: Path,
) -> None:
    from measure.run import load_run

    run = load_run(llm_run_file)
    tight = {
        **CHAT,
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 3}],
    }  # a 200-token prefill is 4 ms
    got = size_option(
        parse_scenario(tight), LlmOption("x", "fp32", 8, 2048, True), run, BOOK, "on_demand", 2000, 256, 4000
    )
    assert not got.meets_slo and got.replicas is None and "more replicas do not help" in (got.why or "")
    assert got.simulations <= 5


def test_fleetwise_size_sizes_llm_runs_and_lists_an_unpriced_device(tmp_path: Path) -> None:
    (llm,) = [f for f in shipped_files() if f.name.startswith("llm-cpu-")]
    sc = tmp_path / "chat.yaml"
    sc.write_text(yaml.safe_dump({**CHAT, "requests": 1500}))
    args = ["size", "--scenario", str(sc), "--runs", str(llm), "--precision", "fp32", "--max-num-seqs", "16",
            "--max-num-batched-tokens", "2048", "--chunked-prefill", "on,off", "--json"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert {o["chunked_prefill"] for o in plan["options"]} == {True, False}
    assert all(
        o["not_priced"] and o["monthly_cost_usd"] is None for o in plan["options"]
    )  # this CPU has no price
    assert any(o["meets_slo"] for o in plan["options"]) and "meets the SLOs" in plan["answer"]
    bad = CliRunner().invoke(app, [*args[:-1], "--chunked-prefill", "maybe"])
    assert bad.exit_code == 2 and "on, off or on,off" in bad.output
    batch = next(f for f in shipped_files() if f.name.startswith("cnn-"))
    mixed = CliRunner().invoke(app, ["size", "--scenario", str(sc), "--runs", str(llm), "--runs", str(batch)])
    assert mixed.exit_code == 2 and "size LLM and batch runs separately" in mixed.output
