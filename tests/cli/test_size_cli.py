"""`fleetwise size` and `fleetwise compare` from the command line: answers, reports, and bad input."""

from __future__ import annotations

import io
import json
import math
import multiprocessing
import threading
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fleetwise_cli.commands import size as size_cmd
from fleetwise_cli.main import app
from measure.run import save_run
from planner.workers import _context
from tests.conftest import REPO, make_run, shipped_files

runner = CliRunner()
SCENARIOS = sorted((REPO / "scenarios").glob("*.yaml"))
PROFILES = [
    str(REPO / "profiles" / "example-accelerator.yaml"),
    str(REPO / "profiles" / "example-encoder-accelerator.yaml"),
]
PRICES = str(REPO / "data" / "prices.yaml")
STEADY = str(REPO / "scenarios" / "steady-api.yaml")
KEYS = {
    "replicas",
    "meets_slo",
    "latency_ms",
    "monthly_cost_usd",
    "cost_per_1k_requests_usd",
    "cost_per_1m_tokens_usd",
    "units_per_joule",
    "source",
    "evidence_ids",
}


def size_args(scenario: Path | str, *extra: str) -> list[str]:
    runs = [a for f in shipped_files() for a in ("--runs", str(f))]
    profiles = [a for p in PROFILES for a in ("--profiles", p)]
    return ["size", "--scenario", str(scenario), *runs, *profiles, "--prices", PRICES, "--jobs", "2", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_gets_a_measured_and_an_assumed_answer(scenario: Path) -> None:
    result = runner.invoke(app, size_args(scenario, "--max-batch", "8", "--max-delay-ms", "0", "--json"))
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["options"] and set(plan["options"][0]) >= KEYS
    answered = [o for o in plan["options"] if o["meets_slo"]]
    assert {o["source"] for o in answered} == {"measured", "assumed"}
    for o in plan["options"]:
        if o["meets_slo"]:
            assert o["replicas"] >= 1 and o["monthly_cost_usd"] > 0 and o["latency_ms"]["p99"] > 0
            assert o["below"] is None or o["below"]["replicas"] == o["replicas"] - 1
        else:
            assert o["reason"] and o["replicas"] is None
        tokens = o["unit"] == "tokens"
        assert (o["cost_per_1m_tokens_usd"] is not None) == (tokens and o["meets_slo"])
    for g in plan["groups"]:  # ranks count up inside each group, SLO-meeting options first
        ranks = [next(o["rank"] for o in plan["options"] if o["key"] == k) for k in g["options"]]
        met = [r for r in ranks if r is not None]
        assert met == list(range(1, len(met) + 1)) and ranks[: len(met)] == met


def test_the_report_is_written_in_markdown_and_html_with_evidence_and_prices(tmp_path: Path) -> None:
    md, page = tmp_path / "plan.md", tmp_path / "plan.html"
    for target in (md, page):
        result = runner.invoke(
            app,
            size_args(
                STEADY,
                "--max-batch",
                "8",
                "--max-delay-ms",
                "0",
                "--precision",
                "fp32",
                "--report",
                str(target),
            ),
        )
        assert result.exit_code == 0, result.output
    text = md.read_text()
    for heading in (
        "## The question",
        "## The answer",
        "## Evidence",
        "## Prices used",
        "## Sensitivity",
        "## Assumptions and limits",
    ):
        assert heading in text
    run_ids = {json.loads(f.read_text())["id"] for f in shipped_files()}
    assert any(i in text for i in run_ids) and "ASSUMED" in text and "as of" in text
    assert "traffic growth x" in text and "every SLO threshold x" in text
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<table>" in html and "http" not in html.split("<body>")[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pricing", "leased"], "unknown pricing 'leased'"),
        (["--rank-by", "vibes"], "unknown --rank-by"),
        (["--max-batch", "4,x"], "--max-batch must be a comma-separated list"),
        (["--precision", "fp64"], "unknown precision 'fp64'"),
        (["--precision", "fp8"], "runs 69cc169606c9 (cnn): no ok point at fp8"),
        (["--report", "plan.pdf"], "must end in .md or .html"),
    ],
)
def test_size_bad_input_is_one_line_and_exit_2(extra: list[str], message: str) -> None:
    result = runner.invoke(app, size_args(STEADY, *extra))
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_missing_price_and_missing_slo_are_named(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(
        "kind: price-book\nelectricity: {usd_per_kwh: 0.1, pue: 1.2, source: s, as_of: 2026-01-01}\n"
        "devices:\n  - {device: x, match: [Nothing], on_demand: {usd_per_hour: 1, energy_included: true, source: s, as_of: 2026-01-01}}\n"
    )
    result = runner.invoke(app, [*size_args(STEADY), "--prices", str(prices), "--json"])
    assert result.exit_code == 0, result.output  # a partial answer: sized, listed as not priced
    plan = json.loads(result.stdout)
    assert plan["options"] and all(o["not_priced"] and o["monthly_cost_usd"] is None for o in plan["options"])
    assert any("no price for device" in o["not_priced"] for o in plan["options"])
    owned = runner.invoke(app, [*size_args(STEADY), "--pricing", "owned", "--max-batch", "1"])
    assert owned.exit_code == 0 and "has no owned price" in owned.output and "not priced" in owned.output
    no_slo = tmp_path / "s.yaml"
    no_slo.write_text("name: s\narrivals: {process: poisson, rate_rps: 5}\nrequests: 100\n")
    result = runner.invoke(app, size_args(no_slo))
    assert result.exit_code == 2 and "has no SLO" in result.output


def test_an_unmeetable_slo_is_an_answer_with_exit_0(tmp_path: Path) -> None:
    sc = tmp_path / "tight.yaml"
    sc.write_text(
        "name: tight\narrivals: {process: poisson, rate_rps: 50}\nrequests: 3000\n"
        "slo: [{percentile: 99, threshold_ms: 0.01}]\n"
    )
    result = runner.invoke(app, size_args(sc, "--max-batch", "1", "--json"))
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert not any(o["meets_slo"] for o in plan["options"])
    assert "no option meets every SLO" in plan["answer"]


def test_compare_shows_the_verdict_first_and_json_has_points(tmp_path: Path) -> None:
    a = save_run(make_run(), tmp_path)
    b_run = make_run()
    b = save_run(
        b_run.model_copy(update={"workload": b_run.workload.model_copy(update={"name": "cnn"})}).with_id(),
        tmp_path,
    )
    result = runner.invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0 and result.output.lstrip().startswith("not comparable")
    assert "workload.name" in result.output
    result = runner.invoke(app, ["compare", str(a), str(a), "--json"])
    c = json.loads(result.stdout)
    assert c["comparable"] and c["points"] and not any(p["significant"] for p in c["points"])
    result = runner.invoke(app, ["compare", str(a), str(tmp_path / "missing.json")])
    assert result.exit_code == 2


def test_the_sizing_bar_in_a_terminal_starts_no_thread_so_workers_are_forked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a refresh thread would make the CLI start its workers from a forkserver (about 2.5 s) instead of forking
    monkeypatch.setattr(size_cmd, "err", Console(file=io.StringIO(), force_terminal=True))
    before = threading.active_count()  # other tests in this process may have left threads running
    with size_cmd._progress(False) as bar:
        assert not bar.disable
        bar.update(bar.add_task("sizing", total=2), completed=1, refresh=True)
        assert threading.active_count() == before
        if before == 1 and "fork" in multiprocessing.get_all_start_methods():
            assert _context().get_start_method() == "fork"


LLM_RUN = next((REPO / "data" / "runs").glob("llm-engine-cpu-*be0a55eb155d.json"))
TINY_CHAT = REPO / "scenarios" / "llm" / "tiny-chat.yaml"


@pytest.mark.parametrize(
    "extra",
    [
        ["--rank-by", "tokens_per_joule"],
        ["--max-batch", "4"],
        ["--max-delay-ms", "5"],
        ["--service-scale", "1.5"],
        ["--exclude-throttled"],
        ["--full-length"],
    ],
)
def test_a_batch_option_on_a_generative_scenario_is_refused_not_dropped(extra: list[str]) -> None:
    res = CliRunner().invoke(app, ["size", "--scenario", str(TINY_CHAT), "--runs", str(LLM_RUN), *extra])
    assert res.exit_code == 2 and f"{extra[0]} does not apply to a generative (LLM) scenario" in res.output


def test_a_batch_router_on_a_generative_scenario_is_refused_in_one_line() -> None:
    """A generative scenario takes --router as the LLM routers to compare; a batch-only one is refused."""
    res = CliRunner().invoke(
        app, ["size", "--scenario", str(TINY_CHAT), "--runs", str(LLM_RUN), "--router", "central"]
    )
    assert res.exit_code == 2 and "router 'central' does not apply to LLM serving" in res.output, res.output


@pytest.mark.parametrize(
    "extra", [["--max-num-seqs", "8"], ["--kv-blocks", "100"], ["--chunked-prefill", "off"]]
)
def test_an_llm_option_on_a_batch_scenario_is_refused_not_dropped(extra: list[str]) -> None:
    sc = REPO / "scenarios" / "steady-api.yaml"
    res = CliRunner().invoke(app, ["size", "--scenario", str(sc), "--profiles", PROFILES[0], *extra])
    assert res.exit_code == 2 and f"{extra[0]} does not apply to a batch scenario" in res.output


def test_llm_sizing_takes_spares_headroom_and_the_requests_asked_for() -> None:
    base = ["size", "--scenario", str(TINY_CHAT), "--runs", str(LLM_RUN), "--max-num-seqs", "64"]
    base += ["--max-num-batched-tokens", "2048", "--kv-blocks", "8192", "--json"]
    plain = json.loads(CliRunner().invoke(app, [*base, "--requests", "1000"]).output)
    spared = CliRunner().invoke(app, [*base, "--requests", "1000", "--spares", "2", "--headroom", "0.2"])
    assert spared.exit_code == 0, spared.output
    (o,), (p,) = json.loads(spared.output)["options"], plain["options"]
    assert o["replicas"] == p["replicas"] and o["replicas"] is not None
    assert o["replicas_deployed"] == math.ceil(o["replicas"] * 1.2 - 1e-9) + 2 > p["replicas_deployed"]
    assert o["redundancy"] == "N+2, +20% headroom"
    small = CliRunner().invoke(app, [*base, "--requests", "30"])
    assert small.exit_code == 2 and "--requests must be in 100..1000000" in small.output


def test_the_requests_asked_for_are_the_requests_an_llm_sizing_simulates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import planner.llm.sizing as llm_sizing
    import planner.question.request as request

    seen: list[int] = []

    def fake(*args: object, **kw: object) -> object:
        seen.append(int(kw["requests"]))  # type: ignore[call-overload]
        raise llm_sizing.LlmSizingError("stop here")

    monkeypatch.setattr(request, "size_llm", fake)  # what the sizing request calls
    base = ["size", "--scenario", str(TINY_CHAT), "--runs", str(LLM_RUN)]
    for extra in ([], ["--requests", "30000"], ["--requests", "500"]):
        CliRunner().invoke(app, [*base, *extra])
    assert seen == [3000, 30000, 500]  # 30,000 was the batch default, and silently became 3,000
