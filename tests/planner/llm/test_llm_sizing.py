"""LLM sizing: the fewest replicas meeting TTFT/TPOT SLOs (one fewer misses), a search that stops when more
replicas cannot help, cost split per 1M input and output tokens, and the CLI's LLM path."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
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
from tests.planner.llm.test_llm_engine import _point
from tests.planner.llm.test_llm_serving import CHAT

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


def test_fleetwise_size_prices_the_shipped_llm_run_and_lists_an_unpriced_device(tmp_path: Path) -> None:
    (llm,) = [f for f in shipped_files() if f.name.startswith("llm-cpu-")]
    sc = tmp_path / "chat.yaml"
    sc.write_text(yaml.safe_dump({**CHAT, "requests": 1500}))
    args = ["size", "--scenario", str(sc), "--runs", str(llm), "--precision", "fp32", "--max-num-seqs", "16",
            "--max-num-batched-tokens", "2048", "--chunked-prefill", "on,off", "--json"]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    plan = json.loads(res.output)
    assert {o["chunked_prefill"] for o in plan["options"]} == {True, False}
    book = load_prices(REPO / "data" / "prices.yaml")
    price = (
        book.by_key("cpu-2vcpu-amd-vm").price("on_demand").usd_per_hour
    )  # the machine the run was measured on
    met = [o for o in plan["options"] if o["meets_slo"]]
    assert met and "$" in plan["answer"]  # the shipped demo shows money
    for o in met:
        assert o["devices_per_replica"] == 1 and o["devices_deployed"] == o["replicas_deployed"]
        assert o["monthly_cost_usd"] == pytest.approx(o["devices_deployed"] * price * 730)
    # a price book that does not know this machine: sized all the same, listed as not priced
    other = tmp_path / "prices.yaml"
    data = yaml.safe_load((REPO / "data" / "prices.yaml").read_text())
    data["devices"] = [d for d in data["devices"] if d["device"] != "cpu-2vcpu-amd-vm"]
    other.write_text(yaml.safe_dump(data))
    unpriced = json.loads(CliRunner().invoke(app, [*args, "--prices", str(other)]).output)
    assert all(o["not_priced"] and o["monthly_cost_usd"] is None for o in unpriced["options"])
    assert "meets the SLOs" in unpriced["answer"]
    bad = CliRunner().invoke(app, [*args[:-1], "--chunked-prefill", "maybe"])
    assert bad.exit_code == 2 and "on, off or on,off" in bad.output
    batch = next(f for f in shipped_files() if f.name.startswith("cnn-"))
    mixed = CliRunner().invoke(app, ["size", "--scenario", str(sc), "--runs", str(llm), "--runs", str(batch)])
    assert mixed.exit_code == 2 and "size LLM and batch runs separately" in mixed.output


def test_the_ladder_starts_at_the_fewest_stable_replicas_and_answers_thresholds_like_a_simulation(
    llm_run_file: Path,
) -> None:
    from measure.run import load_run
    from planner.llm.steps import step_model
    from planner.llm.tradeoff import llm_ladder, replicas_for, why_not

    run = load_run(llm_run_file)
    sc = parse_scenario({**CHAT, "arrivals": {"process": "poisson", "rate_rps": 150}})
    got = size_option(
        sc, LlmOption(str(llm_run_file), "fp32", 8, 2048, True), run, BOOK, "on_demand", 2000, 64, 4000
    )
    lad = llm_ladder(sc, got, requests=2000)
    first = lad.rungs[0].replicas
    assert first > 1 and lad.unstable_below == first - 1

    def sim(n: int):  # type: ignore[no-untyped-def]
        cfg = EngineConfig(8, 2048, True, 16, 4000)
        return run_llm_simulation(sc, step_model(run, "fp32"), cfg, n, "least-outstanding", run, 2000)

    assert not sim(first - 1).stable and sim(first).stable
    # a threshold pair answered from the ladder is the fewest rung meeting both, as each rung's simulation says
    top = lad.rungs[-1]
    ttft, tpot = top.ttft_ms.p99 * 1.0001, top.tpot_ms.p99 * 1.0001
    n = replicas_for(lad, 99.0, ttft, tpot)
    assert n is not None and n <= top.replicas
    r = sim(n)
    assert r.ttft_ms is not None and r.tpot_ms is not None
    assert r.ttft_ms.p99 <= ttft and r.tpot_ms.p99 <= tpot
    for rung in lad.rungs:
        if rung.replicas < n:
            assert rung.ttft_ms.p99 > ttft or rung.tpot_ms.p99 > tpot
    assert lad.monthly_per_replica_usd == pytest.approx(2.0 * 730)
    best_ttft = min(x.ttft_ms.p99 for x in lad.rungs)
    assert replicas_for(lad, 99.0, best_ttft * 0.5, 1e9) is None
    why = why_not(lad, 99.0, best_ttft * 0.5, 1e9)
    assert f"p99 TTFT misses by {best_ttft * 0.5:.3g} ms" in why and "TPOT" not in why


def test_fleetwise_size_writes_an_llm_report_that_cites_its_evidence_and_escapes_file_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (llm,) = [f for f in shipped_files() if f.name.startswith("llm-cpu-")]
    sc = tmp_path / "chat.yaml"
    sc.write_text(yaml.safe_dump({**CHAT, "description": "chat <script>alert(1)</script>", "requests": 1500}))
    (tmp_path / "out").write_text("a file where the report's folder should be")
    report = tmp_path / "out" / "plan.html"
    args = ["size", "--scenario", str(sc), "--runs", str(llm), "--precision", "fp32", "--max-num-seqs", "16",
            "--max-num-batched-tokens", "2048", "--report", str(report)]  # fmt: skip
    with monkeypatch.context() as m:  # the path is checked before any simulation
        m.setattr(
            "planner.question.request.size_llm", lambda *a, **k: pytest.fail("sized before the path check")
        )
        missing = CliRunner().invoke(app, args)
    assert missing.exit_code == 2 and "out" in missing.output, missing.output
    (tmp_path / "out").unlink()
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    text = report.read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    from measure.run import load_run

    assert load_run(llm).id in text and "LLM fleet sizing report" in text and "cpu-2vcpu-amd-vm" in text
    wrong = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "plan.pdf")])
    assert wrong.exit_code == 2 and ".md or .html" in wrong.output


def test_a_replica_of_eight_devices_costs_eight_device_hours_an_hour(llm_run_file: Path) -> None:
    """The same step times served by a TP-8 replica: the same replica count, eight times the devices priced."""
    from measure.run import LlmFacts, ReplicaShape, load_run, unavailable

    one = load_run(llm_run_file)
    tp8 = ReplicaShape(devices=8, tensor_parallel=8, pipeline_parallel=1, data_parallel=1, source="test")
    facts = LlmFacts(
        shape=None, weights="served", weights_note="test", memory_fraction=0.9,
        device_memory_bytes=unavailable("test"), device_memory_method="test", replica=tp8,
    )  # fmt: skip
    eight = one.model_copy(update={"llm": facts})
    sc = parse_scenario({**CHAT, "arrivals": {"process": "poisson", "rate_rps": 120}})
    opt = LlmOption(str(llm_run_file), "fp32", 8, 2048, True)
    a = size_option(sc, opt, one, BOOK, "on_demand", 2000, 64, kv_blocks=4000)
    b = size_option(sc, opt, eight, BOOK, "on_demand", 2000, 64, kv_blocks=4000)
    assert a.replicas == b.replicas and b.replicas_deployed is not None and b.devices_deployed is not None
    assert (a.devices_per_replica, b.devices_per_replica, b.replica) == (1, 8, "8 devices (TP 8)")
    assert b.devices_deployed == b.replicas_deployed * 8
    assert b.monthly_cost_usd == pytest.approx(b.replicas_deployed * 8 * 2.0 * 730)
    assert b.monthly_cost_usd == pytest.approx(8 * (a.monthly_cost_usd or 0))


def _shared_prefix_scenario(tmp_path: Path, rate_rps: float) -> dict:  # type: ignore[type-arg]
    """A Mooncake-format trace: 4 system prompts of 20 blocks of 32 tokens, each request one block of its own."""
    rows = [
        {"timestamp": i * 1000.0 / rate_rps, "input_length": 21 * 32, "output_length": 8,
         "hash_ids": [(i % 4) * 100 + j for j in range(20)] + [10**6 + i]}
        for i in range(1500)
    ]  # fmt: skip
    path = tmp_path / "shared.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return {
        "name": "shared-prefixes",
        "arrivals": {"process": "trace", "path": str(path), "format": "mooncake", "block_tokens": 32},
        "llm": {
            "prompt": {"dist": "trace", "column": "input_length"},
            "output": {"dist": "trace", "column": "output_length"},
        },
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 40}],
        "requests": 1500,
    }


def test_sizing_with_the_prefix_cache_sizes_both_ways_side_by_side(
    llm_run_file: Path, tmp_path: Path
) -> None:
    from planner.llm.sizing import size_llm

    sc = parse_scenario(_shared_prefix_scenario(tmp_path, 200.0))
    plan = size_llm(
        sc, [str(llm_run_file)], None, (64,), (2048,), (True,), BOOK, "on_demand", requests=1500,
        kv_blocks=4000, prefix_caching=(True, False),
    )  # fmt: skip
    on = next(o for o in plan.options if o.prefix_caching)
    off = next(o for o in plan.options if not o.prefix_caching)
    # at the sized count (one replica) every request but each system prompt's first finds its 20 shared blocks
    assert on.replicas == 1 and on.prefix_hit_share == pytest.approx((1500 - 4) * 20 * 32 / (1500 * 21 * 32))
    assert off.prefix_hit_share is None
    assert on.replicas is not None and off.replicas is not None and on.replicas < off.replicas
    assert "prefix-cache" in on.label and "prefix-cache" not in off.label
    assert (
        plan.best == on.label
        and "prefix caching routed prefix-aware, 95% of prompt tokens cached" in plan.answer
    )


def test_the_prefix_cache_switch_is_refused_for_batch_scenarios_and_bad_values(llm_run_file: Path) -> None:
    batch = REPO / "scenarios" / "steady-api.yaml"
    runs = [str(p) for p in shipped_files() if "cnn-cpu" in p.name][:1]
    res = CliRunner().invoke(
        app, ["size", "--scenario", str(batch), "--runs", *runs, "--prefix-caching", "on"]
    )
    assert res.exit_code == 2 and "--prefix-caching does not apply to a batch scenario" in res.output, (
        res.output
    )
    chat = REPO / "scenarios" / "llm" / "tiny-chat.yaml"
    res = CliRunner().invoke(
        app, ["size", "--scenario", str(chat), "--runs", str(llm_run_file), "--prefix-caching", "yes"]
    )
    assert res.exit_code == 2 and "--prefix-caching takes on, off or on,off" in res.output, res.output


def test_with_the_cache_input_tokens_count_as_computed(llm_run_file: Path, tmp_path: Path) -> None:
    """The measured requests (after the warm-up share) each find their 20 shared blocks of 21: the engine computed
    1/21 of their prompt tokens, and that is what a cached plan's $/1M input tokens divides by."""
    from measure.run import load_run
    from planner.llm.engine import EngineConfig
    from planner.llm.simulation import run_llm_simulation
    from planner.llm.steps import step_model

    sc = parse_scenario(_shared_prefix_scenario(tmp_path, 200.0))
    run = load_run(llm_run_file)
    cfg = EngineConfig(kv_blocks=4000, prefix_caching=True)
    on = run_llm_simulation(sc, step_model(run), cfg, 1, "prefix-aware", run, requests=1500)
    assert on.computed_prompt_share == pytest.approx(1 / 21)
    off = run_llm_simulation(sc, step_model(run), EngineConfig(kv_blocks=4000), 1, "round-robin", run, 1500)
    assert off.computed_prompt_share is None


def test_sizing_compares_routers_side_by_side_and_refuses_prefix_routing_without_the_cache(
    llm_run_file: Path, tmp_path: Path
) -> None:
    """16 system prompts of 20 blocks, more than one replica's 400 blocks hold: routed by prefix a replica keeps
    its prompts cached, round robin spreads every prompt over every replica and finds less (80% against 52% of
    prompt tokens cached: 2 replicas against 3)."""
    from planner.llm.sizing import size_llm

    data = _shared_prefix_scenario(tmp_path, 400.0)
    which = np.random.default_rng(7).integers(0, 16, 1500)  # no period a round robin could split evenly
    rows = [
        {"timestamp": i * 1000.0 / 400.0, "input_length": 21 * 32, "output_length": 8,
         "hash_ids": [int(which[i]) * 100 + j for j in range(20)] + [10**6 + i]}
        for i in range(1500)
    ]  # fmt: skip
    Path(data["arrivals"]["path"]).write_text("\n".join(json.dumps(r) for r in rows))
    sc = parse_scenario(data)
    plan = size_llm(
        sc, [str(llm_run_file)], None, (64,), (2048,), (True,), BOOK, "on_demand", requests=1500,
        kv_blocks=400, prefix_caching=(True,), routers=("round-robin", "prefix-aware"),
    )  # fmt: skip
    by = {o.router: o for o in plan.options}
    assert set(by) == {"round-robin", "prefix-aware"} and len({o.label for o in plan.options}) == 2
    rr, pa = by["round-robin"], by["prefix-aware"]
    assert rr.prefix_hit_share is not None and pa.prefix_hit_share is not None
    assert pa.prefix_hit_share > rr.prefix_hit_share
    assert pa.replicas is not None and rr.replicas is not None and pa.replicas < rr.replicas
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    res = CliRunner().invoke(
        app,
        [
            "size",
            "--scenario",
            str(tmp_path / "s.yaml"),
            "--runs",
            str(llm_run_file),
            "--router",
            "prefix-aware",
        ],
    )
    assert res.exit_code == 2 and "--router prefix-aware matches cached prefixes" in res.output, res.output
    res = CliRunner().invoke(
        app,
        ["size", "--scenario", str(tmp_path / "s.yaml"), "--runs", str(llm_run_file), "--router", "fastest"],
    )
    assert res.exit_code == 2 and "unknown LLM router 'fastest'" in res.output, res.output


def test_a_disaggregated_option_is_the_fewest_replicas_over_every_split_and_priced_per_device(
    llm_run_file: Path,
) -> None:
    """The split search's answer, held to brute force: every (prefill, decode) split of fewer replicas misses an
    SLO; the option is costed for prefill + decode devices and the answer names the split."""
    from measure.run import load_run
    from planner.llm.disagg import KvLink, Pool
    from planner.llm.steps import step_model

    run = load_run(llm_run_file)
    sc = parse_scenario({**CHAT, "arrivals": {"process": "poisson", "rate_rps": 400}})  # 2 + 3 replicas
    link = KvLink(50.0, 0.5, 65_536, "stated")
    opt = LlmOption(str(llm_run_file), "fp32", 8, 2048, True, link=link)
    got = size_option(sc, opt, run, BOOK, "on_demand", 1500, 64, kv_blocks=4000)
    assert got.meets_slo and got.disaggregated and got.prefill_replicas and got.decode_replicas
    assert got.replicas == got.prefill_replicas + got.decode_replicas > 3
    assert got.monthly_cost_usd == pytest.approx(got.replicas * 2.0 * 730)
    model, cfg = step_model(run, "fp32"), EngineConfig(8, 2048, True, 16, 4000)

    def meets(p: int, d: int) -> bool:
        r = run_llm_simulation(sc, model, cfg, p, "least-outstanding", run, 1500, None, None,
                               Pool(model, cfg, d, "least-outstanding"), link)  # fmt: skip
        return r.stable and all(c.met for c in r.slo)

    assert meets(got.prefill_replicas, got.decode_replicas)
    for total in range(2, got.replicas):
        assert not any(meets(p, total - p) for p in range(1, total)), total


def test_disaggregated_sizing_is_refused_without_a_link(llm_run_file: Path) -> None:
    chat = REPO / "scenarios" / "llm" / "tiny-chat.yaml"
    base = ["size", "--scenario", str(chat), "--runs", str(llm_run_file)]
    for extra, said in (
        (["--kv-link-gbps", "50"], "--kv-link-gbps describe(s) disaggregated pools"),
        (["--disaggregated", "on"], "needs the KV link between the pools: --kv-link-gbps"),
        (["--disaggregated", "sometimes", "--kv-link-gbps", "5"], "--disaggregated takes on, off or on,off"),
    ):
        res = CliRunner().invoke(app, [*base, *extra])
        assert res.exit_code == 2 and said in res.output, res.output


def test_the_slo_explorer_ladder_of_a_disaggregated_option_holds_every_split(llm_run_file: Path) -> None:
    """Its rungs are the splits of the sized total and the next three; at the scenario's own TTFT threshold the
    fewest rung is the sized total."""
    from measure.run import load_run
    from planner.llm.disagg import KvLink
    from planner.llm.tradeoff import llm_ladder, rung_for

    run = load_run(llm_run_file)
    sc = parse_scenario({**CHAT, "arrivals": {"process": "poisson", "rate_rps": 400}})
    opt = LlmOption(str(llm_run_file), "fp32", 8, 2048, True, link=KvLink(50.0, 0.5, 65_536, "stated"))
    got = size_option(sc, opt, run, BOOK, "on_demand", 1500, 64, kv_blocks=4000)
    assert got.replicas is not None and got.kv_link == (50.0, 0.5, 65_536)
    lad = llm_ladder(sc, got, 1500)
    totals = {r.replicas for r in lad.rungs}
    assert totals <= set(range(got.replicas, got.replicas + 4)) and got.replicas in totals
    assert all(
        r.prefill_replicas and r.prefill_replicas + (r.decode_replicas or 0) == r.replicas for r in lad.rungs
    )
    ttft = next(s.threshold_ms for s in sc.slo if s.metric == "ttft")
    best = rung_for(lad, 99, ttft, 1e9)
    assert best is not None and best.replicas == got.replicas
