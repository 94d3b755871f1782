"""Benchmarks as capacity curves: the files of one engine, model and hardware make one curve, the capacity is
interpolated between the measured levels around the first SLO break and never claimed beyond the fastest, and
a sweep of rate files sizes to the fewest replicas, not to the upper bound of its slowest passing file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as hst
from typer.testing import CliRunner

from fleetwise_cli.main import app
from planner.evidence.bench_import import convert
from planner.evidence.engine_benchmark import EngineBenchmark, save_benchmark
from planner.llm.bench_curve import CurvePoint, capacity, curve_points, group_benchmarks, replicas_at
from planner.traffic.scenario import Slo
from tests.planner.evidence.test_bench_import import plan_window, vllm_result

# one vllm bench serve file per rate, as a sweep writes them: offered rate, achieved rate, p99 TTFT (ms)
SWEEP = [(2.0, 1.98, 40.0), (4.0, 3.96, 55.0), (8.0, 7.9, 90.0), (16.0, 13.1, 400.0)]


def vllm_file(
    rate: float, achieved: float, ttft_p99: float, hardware: str = "8x NVIDIA H200"
) -> EngineBenchmark:
    d: dict[str, Any] = vllm_result(detailed=False) | {
        "request_rate": rate, "request_throughput": achieved, "num_prompts": 200, "completed": 200,
        "total_input_tokens": 200 * 200, "total_output_tokens": 200 * 32, "duration": 200 / achieved,
        "mean_ttft_ms": ttft_p99 * 0.6, "median_ttft_ms": ttft_p99 * 0.5, "p99_ttft_ms": ttft_p99,
    }  # fmt: skip
    raw = json.dumps(d).encode()
    return convert(json.loads(raw), raw, hardware, f"rate-{rate:g}.json")


def ttft(threshold_ms: float) -> list[Slo]:
    return [Slo(metric="ttft", percentile=99, threshold_ms=threshold_ms)]


def test_four_rate_files_are_one_curve_and_size_to_the_fewest_replicas(tmp_path: Path) -> None:
    files = [save_benchmark(vllm_file(*s), tmp_path / "bench") for s in SWEEP]
    sc = tmp_path / "chat.yaml"
    sc.write_text(yaml.safe_dump({
        "name": "chat", "arrivals": {"process": "poisson", "rate_rps": 100},
        "llm": {"prompt": {"dist": "fixed", "value": 200}, "output": {"dist": "fixed", "value": 32}},
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 200}], "requests": 3000,
    }))  # fmt: skip
    repeated = [a for f in files for a in ("--benchmarks", str(f))]
    out = CliRunner().invoke(app, ["size", "--scenario", str(sc), *repeated, "--json"])
    assert out.exit_code == 0, out.output
    (curve,) = json.loads(out.output)["from_benchmarks"]  # four files, one curve
    folder = CliRunner().invoke(
        app, ["size", "--scenario", str(sc), "--benchmarks", str(tmp_path / "bench"), "--json"]
    )
    assert json.loads(folder.output)["from_benchmarks"] == [curve]  # the sweep's folder stands for its files
    assert len(curve["benchmark_ids"]) == 4 and len(curve["curve"]) == 4
    # the first break is between the 7.9 and 13.1 req/s levels: 90 ms -> 400 ms crosses 200 ms at
    expected = 7.9 + (200 - 90) / (400 - 90) * (13.1 - 7.9)
    assert curve["capacity_rps"] == pytest.approx(expected)
    assert "rate 8" in curve["level"] and "rate 16" in curve["capacity_above"]
    assert curve["slo"]["p99 ttft <= 200 ms"] == pytest.approx(200.0)
    offered = 3000 / plan_window(sc)
    assert curve["replicas"] == math.ceil(offered / expected)
    # the rate-8 file alone says more: its level passes and is the fastest it knows, an upper bound
    assert curve["replicas"] < math.ceil(offered / 7.9)
    assert curve["devices"] == curve["replicas"] * 8
    report = tmp_path / "plan.md"
    res = CliRunner().invoke(app, ["size", "--scenario", str(sc), *repeated, "--report", str(report)])
    assert res.exit_code == 0, res.output
    text = report.read_text()
    assert all(i in text for i in curve["benchmark_ids"])  # every file cited
    assert text.count("(the capacity lies between this level and the next)") == 2


def test_the_capacity_is_never_claimed_beyond_the_fastest_level() -> None:
    points, _ = curve_points([vllm_file(*s) for s in SWEEP])
    top = capacity(points, ttft(1000.0))
    assert top.rate_rps == pytest.approx(13.1) and top.above is None
    assert any("upper bound" in w and "nothing is extrapolated" in w for w in top.warnings)
    none = capacity(points, ttft(30.0))
    assert none.rate_rps is None and none.why is not None and "already misses" in none.why


def test_a_level_that_passes_again_above_a_failing_one_is_named_and_the_first_crossing_kept() -> None:
    noisy = [*SWEEP[:3], (12.0, 11.0, 300.0), (16.0, 13.1, 150.0)]
    points, _ = curve_points([vllm_file(*s) for s in noisy])
    cap = capacity(points, ttft(200.0))
    assert cap.rate_rps == pytest.approx(7.9 + (200 - 90) / (300 - 90) * (11.0 - 7.9))
    assert any("not monotone" in w and "rate 16" in w for w in cap.warnings)


def test_files_of_other_hardware_or_replica_shape_are_other_curves() -> None:
    h200 = [vllm_file(*s) for s in SWEEP[:2]]
    h100 = vllm_file(*SWEEP[2], hardware="8x NVIDIA H100")
    groups = group_benchmarks([h200[0], h100, h200[1], h200[0]])
    assert [len(g) for g in groups] == [2, 1]  # the repeated file counts once


def test_closed_loop_levels_stay_off_an_open_loop_curve() -> None:
    b = vllm_file(*SWEEP[1])
    closed = b.model_copy(update={"levels": [b.levels[0].model_copy(update={"traffic": "concurrency"})]})
    points, notes = curve_points([vllm_file(*SWEEP[0]), closed])
    assert len(points) == 1 and any("left out of the curve" in n for n in notes)


@settings(max_examples=200, deadline=None)
@given(
    hst.lists(hst.tuples(hst.floats(0.1, 100.0), hst.floats(1.0, 1e4)), min_size=1, max_size=8),
    hst.floats(1.0, 1e4),
    hst.floats(1.0, 3.0),
)
def test_the_capacity_lies_between_the_levels_that_bracket_it_and_grows_with_the_threshold(
    levels: list[tuple[float, float]], threshold: float, looser: float
) -> None:
    """Against the rules written out plainly: every level up to the capacity passes, the SLO figure at the
    capacity is within the threshold, and a looser threshold never gives less capacity."""
    points = sorted(
        (CurvePoint(benchmark_id="sha256:x", tool="t", level=f"l{i}", rate_rps=r, stats={"ttft": {"p99": v}})
         for i, (r, v) in enumerate(levels)),
        key=lambda p: p.rate_rps,
    )  # fmt: skip
    cap = capacity(points, ttft(threshold))
    passing = 0
    while passing < len(points) and points[passing].stats["ttft"]["p99"] <= threshold:
        passing += 1
    if passing == 0:
        assert cap.rate_rps is None
        return
    assert cap.rate_rps is not None
    lo = points[passing - 1].rate_rps
    hi = points[passing].rate_rps if passing < len(points) else lo
    assert lo - 1e-9 <= cap.rate_rps <= hi + 1e-9
    assert cap.figures["p99 ttft <= " + f"{threshold:g} ms"] <= threshold * (1 + 1e-9)
    wider = capacity(points, ttft(threshold * looser))
    assert wider.rate_rps is not None and wider.rate_rps >= cap.rate_rps - 1e-9


def test_the_explorer_answers_any_threshold_from_the_curve_without_new_evidence() -> None:
    points, _ = curve_points([vllm_file(*s) for s in SWEEP])
    counts = [replicas_at(points, 100.0, ttft(t))[0] for t in (30.0, 60.0, 200.0, 400.0, 1000.0)]
    assert counts[0] is None  # tighter than the slowest level measured
    assert counts[1:] == [
        math.ceil(100 / r) for r in (3.96 + 5 / 35 * (7.9 - 3.96), 7.9 + 110 / 310 * 5.2, 13.1, 13.1)
    ]


def test_a_real_vllm_sweep_of_four_rate_files_sizes_to_the_fewest_replicas(tmp_path: Path) -> None:
    """`vllm bench serve` 0.32.0 against vLLM serving the tiny model here, one file per --request-rate
    (tests/fixtures/benchmarks/README.md): the folder is one curve, and the capacity lies between the last
    level within the objective and the first beyond it, at the crossing of the straight line between them."""
    from planner.evidence.bench_import import import_file
    from tests.conftest import REPO

    sweep = REPO / "tests" / "fixtures" / "benchmarks" / "vllm-0.32.0-sweep"
    levels = sorted(
        (import_file(f).levels[0] for f in sweep.glob("rate-*.json")), key=lambda lv: lv.request_rps or 0
    )
    assert len(levels) == 4
    # an objective between the p99 TTFTs the engine measured at its two fastest rates
    below, above = levels[2], levels[3]
    assert (
        below.ttft
        and above.ttft
        and below.ttft.p99
        and above.ttft.p99
        and below.request_rps
        and above.request_rps
    )
    threshold = (below.ttft.p99 + above.ttft.p99) / 2
    sc = tmp_path / "tiny-chat.yaml"
    sc.write_text(yaml.safe_dump({
        "name": "tiny-chat", "arrivals": {"process": "poisson", "rate_rps": 400},
        "llm": {"prompt": {"dist": "fixed", "value": 200}, "output": {"dist": "fixed", "value": 32}},
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": threshold}], "requests": 6000,
    }))  # fmt: skip
    out = CliRunner().invoke(app, ["size", "--scenario", str(sc), "--benchmarks", str(sweep), "--json"])
    assert out.exit_code == 0, out.output
    (curve,) = json.loads(out.output)["from_benchmarks"]
    expected = below.request_rps + (threshold - below.ttft.p99) / (above.ttft.p99 - below.ttft.p99) * (
        above.request_rps - below.request_rps
    )
    assert curve["capacity_rps"] == pytest.approx(expected)
    offered = 6000 / plan_window(sc)
    assert curve["replicas"] == math.ceil(offered / expected) < math.ceil(offered / below.request_rps)
