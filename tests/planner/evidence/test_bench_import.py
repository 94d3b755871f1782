"""Importing the results users already have: GuideLLM and AIPerf files written by the real tools against the
project's tiny engine (tests/fixtures/benchmarks, see its README), a `vllm bench serve` result built here to that
tool's documented schema; unknown and newer formats refused with the reason; nothing guessed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from planner.evidence.bench_import import convert, import_file
from planner.evidence.engine_benchmark import BenchmarkFileError, load_benchmark, save_benchmark
from tests.conftest import REPO

FIXTURES = REPO / "tests" / "fixtures" / "benchmarks"
GUIDELLM = FIXTURES / "guidellm-0.8.1-benchmarks.json"
AIPERF = FIXTURES / "aiperf-0.13.0-profile_export_aiperf.json"


def raw(path: Path) -> Any:
    return json.loads(path.read_text())


def vllm_result(detailed: bool = True) -> dict[str, Any]:
    """A `vllm bench serve --save-result [--save-detailed]` file's keys (vllm/benchmarks/serve.py); the values
    are arbitrary but consistent: three requests."""
    d: dict[str, Any] = {
        "date": "20261129-120000", "endpoint_type": "openai", "backend": "openai", "label": None,
        "model_id": "meta-llama/Llama-3.1-8B-Instruct", "tokenizer_id": "meta-llama/Llama-3.1-8B-Instruct",
        "num_prompts": 3, "request_rate": 4.0, "burstiness": 1.0, "max_concurrency": None, "duration": 1.5,
        "completed": 3, "failed": 0, "total_input_tokens": 600, "total_output_tokens": 30,
        "request_throughput": 2.0, "request_goodput": None, "output_throughput": 20.0,
        "total_token_throughput": 420.0, "mean_ttft_ms": 30.0, "median_ttft_ms": 30.0, "std_ttft_ms": 8.0,
        "p99_ttft_ms": 39.8, "mean_tpot_ms": 10.0, "median_tpot_ms": 10.0, "std_tpot_ms": 0.0,
        "p99_tpot_ms": 10.0, "mean_itl_ms": 10.0, "median_itl_ms": 10.0, "std_itl_ms": 0.0, "p99_itl_ms": 10.0,
        "mean_e2el_ms": 120.0, "median_e2el_ms": 120.0, "std_e2el_ms": 8.0, "p99_e2el_ms": 129.8,
    }  # fmt: skip
    if detailed:
        d |= {
            "input_lens": [200, 200, 200], "output_lens": [10, 10, 10], "ttfts": [0.02, 0.03, 0.04],
            "itls": [[0.01] * 9] * 3, "generated_texts": ["x", "y", "z"], "errors": ["", "", ""],
        }  # fmt: skip
    return d


def test_a_guidellm_report_converts_with_guidellms_own_numbers_and_names() -> None:
    b = import_file(GUIDELLM, "2-core AMD EPYC VM")
    src = raw(GUIDELLM)
    assert b.tool == "guidellm" and b.tool_version == src["metadata"]["guidellm_version"]
    assert len(b.levels) == len(src["benchmarks"])
    for lv, sb in zip(b.levels, src["benchmarks"], strict=True):
        m = sb["metrics"]
        assert (
            lv.ttft is not None
            and lv.ttft.p99 == m["time_to_first_token_ms"]["successful"]["percentiles"]["p99"]
        )
        assert lv.e2e is not None and lv.e2e.p50 == pytest.approx(
            m["request_latency"]["successful"]["percentiles"]["p50"] * 1000
        )
        assert lv.fields["ttft.p99"] == "metrics.time_to_first_token_ms.successful.percentiles.p99"
        assert lv.completed == m["request_totals"]["successful"]
        assert len(lv.requests) == m["request_totals"]["total"]
        ok = [r for r in lv.requests if r.ok]
        assert all(r.prompt_tokens and r.output_tokens and r.ttft_ms is not None for r in ok)
        assert [r.start_s for r in lv.requests] == sorted(r.start_s for r in lv.requests)  # type: ignore[type-var]
    assert b.hardware == "2-core AMD EPYC VM" and b.model != "unknown"


def test_an_aiperf_export_converts_and_its_inter_token_latency_is_tpot() -> None:
    b = import_file(AIPERF)
    src = raw(AIPERF)
    (lv,) = b.levels
    assert b.tool == "aiperf" and b.tool_version == src["aiperf_version"]
    assert lv.tpot is not None and lv.tpot.mean == src["inter_token_latency"]["avg"]
    assert lv.ttft is not None and lv.ttft.p99 == src["time_to_first_token"]["p99"]
    assert lv.fields["tpot.mean"] == "inter_token_latency.avg"
    phase = src["input_config"]["phases"][0]
    assert lv.traffic == "rate" and lv.rate_rps == phase["rate"] and lv.arrivals == phase["type"]
    assert b.hardware.startswith("unknown")  # the file does not say; nothing guessed


def test_a_vllm_result_converts_with_per_request_data_and_an_infinite_rate_is_closed_loop() -> None:
    b = convert(vllm_result(), b"raw bytes", None, "vllm.json")
    (lv,) = b.levels
    assert b.tool == "vllm-bench-serve" and "unknown" in b.tool_version
    assert lv.traffic == "rate" and lv.arrivals == "poisson" and lv.rate_rps == 4.0
    assert (
        lv.ttft is not None
        and (lv.ttft.p50, lv.ttft.p99) == (30.0, 39.8)
        and lv.fields["ttft.p50"] == "median_ttft_ms"
    )
    assert [r.ttft_ms for r in lv.requests] == pytest.approx([20.0, 30.0, 40.0])
    assert [r.e2e_ms for r in lv.requests] == pytest.approx([110.0, 120.0, 130.0])  # ttft + the 9 gaps
    closed = convert(vllm_result(False) | {"request_rate": "inf", "max_concurrency": 8}, b"x", None, "v.json")
    assert closed.levels[0].traffic == "concurrency" and closed.levels[0].concurrency == 8
    assert closed.levels[0].requests == [] and any("--save-detailed" in n for n in closed.notes)


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda d: d["metadata"].update(version=3), "metadata version 3"),
        (lambda d: d.pop("metadata"), "not a result fleetwise can import"),
    ],
)
def test_a_newer_or_unknown_guidellm_format_is_refused_with_the_reason(edit: Any, expect: str) -> None:
    data = raw(GUIDELLM)
    edit(data)
    with pytest.raises(BenchmarkFileError, match=expect):
        convert(data, b"x", None, "g.json")


def test_an_aiperf_export_of_another_schema_major_is_refused() -> None:
    with pytest.raises(BenchmarkFileError, match=r"schema_version '2\.0'"):
        convert(raw(AIPERF) | {"schema_version": "2.0"}, b"x", None, "a.json")


def test_the_evidence_file_is_content_addressed_and_an_edit_is_caught(tmp_path: Path) -> None:
    a = save_benchmark(import_file(GUIDELLM), tmp_path / "a")
    b = save_benchmark(import_file(GUIDELLM), tmp_path / "b")  # imported again later: same id, same name
    assert a.name == b.name and load_benchmark(a).id == load_benchmark(b).id
    assert import_file(a).id == load_benchmark(a).id  # an evidence file imports as itself
    data = json.loads(a.read_text())
    data["levels"][0]["completed"] += 1
    a.write_text(json.dumps(data))
    with pytest.raises(BenchmarkFileError, match="does not match the content"):
        load_benchmark(a)


def test_fleetwise_import_writes_the_evidence_or_names_the_problem(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    ok = CliRunner().invoke(app, ["import", str(AIPERF), "--out", str(out), "--hardware", "CPU VM"])
    assert ok.exit_code == 0, ok.output
    (written,) = out.glob("bench-aiperf-*.json")
    assert load_benchmark(written).hardware == "CPU VM"
    for text, expect in (
        ("{not json", "JSON"),
        (json.dumps({"a": 1}), "not a result"),
        ('{"x": NaN}', "NaN"),
    ):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        res = CliRunner().invoke(app, ["import", str(bad), "--out", str(tmp_path / "none")])
        assert res.exit_code == 2 and expect in res.output, res.output
        assert not list((tmp_path / "none").glob("*.json")) if (tmp_path / "none").exists() else True


def test_fleetwise_size_sizes_from_an_imported_benchmark_when_no_run_exists(tmp_path: Path) -> None:
    import math

    import yaml

    from planner.fleet.prices import load_prices

    bench_dir = tmp_path / "bench"
    res = CliRunner().invoke(
        app, ["import", str(AIPERF), "--out", str(bench_dir), "--hardware", "1x NVIDIA H200 (AIPerf run)"]
    )
    assert res.exit_code == 0, res.output
    (bench,) = bench_dir.glob("bench-*.json")
    level = load_benchmark(bench).levels[0]
    assert level.ttft is not None and level.ttft.p99 is not None and level.request_rps is not None
    sc = tmp_path / "chat.yaml"

    def scenario(threshold_ms: float) -> None:
        sc.write_text(yaml.safe_dump({
            "name": "chat", "arrivals": {"process": "poisson", "rate_rps": 30},
            "llm": {"prompt": {"dist": "fixed", "value": 200}, "output": {"dist": "fixed", "value": 32}},
            "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": threshold_ms}], "requests": 3000,
        }))  # fmt: skip

    scenario(level.ttft.p99 * 1.5)
    out = CliRunner().invoke(app, ["size", "--scenario", str(sc), "--benchmarks", str(bench), "--json"])
    assert out.exit_code == 0, out.output
    plan = json.loads(out.output)
    (b,) = plan["from_benchmarks"]
    offered = 3000 / plan_window(sc)
    assert b["meets_slo"] and b["replicas"] == math.ceil(offered / level.request_rps)
    h200 = load_prices(REPO / "data" / "prices.yaml").by_key("nvidia-h200").price("on_demand").usd_per_hour
    assert b["monthly_cost_usd"] == pytest.approx(b["replicas"] * h200 * 730)
    assert "engine benchmark" in b["evidence"] and "engine benchmark" in plan["answer"]
    # an SLO tighter than anything the benchmark measured: no capacity, and the reason
    scenario(0.001)
    tight = json.loads(
        CliRunner().invoke(app, ["size", "--scenario", str(sc), "--benchmarks", str(bench), "--json"]).output
    )
    assert (
        not tight["from_benchmarks"][0]["meets_slo"]
        and "already misses" in tight["from_benchmarks"][0]["why"]
    )


def plan_window(sc: Path) -> float:
    from planner.llm.simulation import llm_requests
    from planner.traffic.scenario import load_scenario

    _, window, _ = llm_requests(load_scenario(sc))
    return window


def test_a_tensor_parallel_8_benchmark_is_priced_as_eight_gpus_a_replica(tmp_path: Path) -> None:
    """`--hardware 'NVIDIA H200' --devices-per-replica 8 --tp 8`: cost = replicas x 8 x the price per GPU-hour;
    a count in the hardware text that disagrees is refused; the text's own count is used when none is given."""
    import yaml

    from planner.fleet.prices import load_prices

    bench_dir = tmp_path / "bench"
    res = CliRunner().invoke(app, ["import", str(AIPERF), "--out", str(bench_dir), "--hardware", "NVIDIA H200",
                                   "--devices-per-replica", "8", "--tp", "8"])  # fmt: skip
    assert res.exit_code == 0, res.output
    (bench,) = bench_dir.glob("bench-*.json")
    b = load_benchmark(bench)
    assert (b.replica.devices, b.replica.tensor_parallel) == (
        8,
        8,
    ) and "a replica is 8 devices (TP 8)" in res.output
    level = b.levels[0]
    assert level.ttft is not None and level.ttft.p99 is not None
    sc = tmp_path / "chat.yaml"
    sc.write_text(yaml.safe_dump({
        "name": "chat", "arrivals": {"process": "poisson", "rate_rps": 30},
        "llm": {"prompt": {"dist": "fixed", "value": 200}, "output": {"dist": "fixed", "value": 32}},
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": level.ttft.p99 * 1.5}], "requests": 3000,
    }))  # fmt: skip
    out = CliRunner().invoke(app, ["size", "--scenario", str(sc), "--benchmarks", str(bench), "--json"])
    assert out.exit_code == 0, out.output
    (sized,) = json.loads(out.output)["from_benchmarks"]
    h200 = load_prices(REPO / "data" / "prices.yaml").by_key("nvidia-h200").price("on_demand").usd_per_hour
    assert sized["devices"] == sized["replicas"] * 8
    assert sized["monthly_cost_usd"] == pytest.approx(sized["replicas"] * 8 * h200 * 730)
    clash = CliRunner().invoke(app, ["import", str(AIPERF), "--out", str(tmp_path / "x"), "--hardware",
                                     "8x NVIDIA H200", "--devices-per-replica", "4"])  # fmt: skip
    assert clash.exit_code == 2 and "says 8 devices" in clash.output and "give one count" in clash.output
    said = import_file(AIPERF, "8x NVIDIA H200")
    assert said.replica.devices == 8 and "hardware text" in said.replica.source
    assert import_file(AIPERF, "NVIDIA H200").replica.devices == 1


def test_the_report_of_a_benchmark_plan_cites_every_file_level_and_price(tmp_path: Path) -> None:
    import yaml

    bench_dir = tmp_path / "bench"
    res = CliRunner().invoke(
        app, ["import", str(AIPERF), "--out", str(bench_dir), "--hardware", "8x NVIDIA H200"]
    )
    assert res.exit_code == 0, res.output
    (bench,) = bench_dir.glob("bench-*.json")
    b = load_benchmark(bench)
    level = b.levels[0]
    assert level.ttft is not None and level.ttft.p99 is not None
    sc = tmp_path / "chat.yaml"
    sc.write_text(yaml.safe_dump({
        "name": "chat", "arrivals": {"process": "poisson", "rate_rps": 30},
        "llm": {"prompt": {"dist": "fixed", "value": 200}, "output": {"dist": "fixed", "value": 32}},
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": level.ttft.p99 * 1.5}], "requests": 3000,
    }))  # fmt: skip
    report = tmp_path / "plan.md"
    out = CliRunner().invoke(
        app, ["size", "--scenario", str(sc), "--benchmarks", str(bench), "--report", str(report)]
    )
    assert out.exit_code == 0, out.output
    text = report.read_text()
    assert b.id in text and b.source_sha256 in text and "8 devices" in text
    assert all(lv.label in text for lv in b.levels) and "(the capacity used)" in text
    assert "nvidia-h200" in text  # the price entry used, with its source
    assert "read as measured by their tool, not simulated" in text
