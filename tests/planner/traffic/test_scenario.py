"""Scenario files, traffic generation and service models: formats load as written, streams have the stated
statistics, bad files get one readable line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from measure.run import load_run
from planner.serving.profiles import load_profile
from planner.serving.service import ServiceError
from planner.serving.service_from import from_profile, from_run
from planner.traffic.arrivals import generate, read_trace
from planner.traffic.scenario import ScenarioError, load_scenario, parse_scenario
from tests.conftest import shipped_run

ROOT = Path(__file__).resolve().parents[3]
TRACES = ROOT.parent / "shared" / "traces"
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


def sc(arrivals: dict, **kw: object):  # type: ignore[no-untyped-def,type-arg]
    return parse_scenario({"name": "t", "arrivals": arrivals, "requests": kw.pop("requests", 100_000), **kw})


def test_the_shipped_scenarios_and_the_example_profile_load() -> None:
    names = {load_scenario(p).name for p in SCENARIOS}
    assert {"steady-api", "bursty-api", "diurnal-chat", "nightly-batch", "launch-day-spike"} <= names
    prof = load_profile(ROOT / "profiles" / "example-accelerator.yaml")
    assert [p.batch for p in prof.points] == [1, 2, 4, 8] and prof.power_w is not None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"name": "x", "arrivals": {"process": "poisson", "rate_rps": -1}, "requests": 10},
            "rate_rps: Input should be greater than or equal to 0.000001",
        ),
        ({"name": "x", "arrivals": {"process": "teleport"}, "requests": 10}, "arrivals"),
        (
            {"name": "x", "arrivals": {"process": "poisson", "rate_rps": 1}},
            "exactly one of requests or duration_s",
        ),
        (
            {"name": "x", "arrivals": {"process": "poisson", "rate_rps": 1}, "requests": 5, "duration_s": 3},
            "exactly one",
        ),
        (
            {"name": "x", "arrivals": {"process": "poisson", "rate_rps": 1}, "requests": 5, "colour": "red"},
            "colour: Extra inputs",
        ),
        (
            {
                "name": "x",
                "arrivals": {"process": "diurnal", "peak_rate_rps": 5, "hourly_multipliers": [1] * 23},
                "requests": 5,
            },
            "hourly_multipliers",
        ),
        (
            {
                "name": "x",
                "arrivals": {"process": "poisson", "rate_rps": 1},
                "requests": 5,
                "slo": [{"percentile": 100, "threshold_ms": 5}],
            },
            "slo.0.percentile",
        ),
        (
            {
                "name": "x",
                "arrivals": {"process": "poisson", "rate_rps": 1},
                "requests": 5,
                "size": {"seq_len": {"dist": "trace"}},
            },
            "needs trace arrivals",
        ),
        (["not", "a", "mapping"], "must be a YAML mapping"),
    ],
)
def test_invalid_scenarios_get_one_readable_line(data: object, message: str) -> None:
    with pytest.raises(ScenarioError) as exc:
        parse_scenario(data)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_unreadable_files_say_why(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)


def test_poisson_and_gamma_streams_have_the_stated_rate_and_variability() -> None:
    p = generate(sc({"process": "poisson", "rate_rps": 200}))
    gaps = np.diff(p.arrival_s)
    assert len(p) / p.window_s == pytest.approx(200, rel=0.02) and gaps.std() / gaps.mean() == pytest.approx(
        1, rel=0.03
    )
    g = generate(sc({"process": "gamma", "rate_rps": 200, "cv": 3}))
    gaps = np.diff(g.arrival_s)
    assert 1 / gaps.mean() == pytest.approx(200, rel=0.05) and gaps.std() / gaps.mean() == pytest.approx(
        3, rel=0.1
    )


def test_mmpp_mean_rate_follows_the_state_durations() -> None:
    s = sc(
        {
            "process": "mmpp",
            "states": [{"rate_rps": 100, "mean_duration_s": 2}, {"rate_rps": 0, "mean_duration_s": 2}],
        },
        requests=200_000,
    )
    r = generate(s)
    assert len(r) / r.window_s == pytest.approx(s.mean_rate_rps(), rel=0.05) and s.mean_rate_rps() == 50


def test_diurnal_hours_follow_the_multipliers_and_an_empty_hour_stays_empty() -> None:
    mult = [1.0 if h % 2 == 0 else 0.25 for h in range(24)]
    mult[5] = 0.0
    s = parse_scenario(
        {
            "name": "d",
            "arrivals": {"process": "diurnal", "peak_rate_rps": 2.0, "hourly_multipliers": mult},
            "duration_s": 86_400 * 2,
        }
    )
    r = generate(s)
    counts = np.bincount((r.arrival_s // 3600).astype(int) % 24, minlength=24) / 2
    assert counts[5] == 0
    assert counts[0] == pytest.approx(7200, rel=0.05) and counts[1] == pytest.approx(1800, rel=0.08)


def test_lognormal_sizes_are_capped_and_the_clipping_is_counted() -> None:
    r = generate(
        sc(
            {"process": "poisson", "rate_rps": 10},
            size={"seq_len": {"dist": "lognormal", "median": 100, "sigma": 1, "cap": 200}},
        )
    )
    assert r.seq_len is not None and r.seq_len.max() == 200 and r.clipped > 0
    assert any("clipped" in n for n in r.notes)


@pytest.mark.skipif(not (TRACES / "azure-llm-2023-conv.csv").exists(), reason="shared traces not present")
def test_an_azure_trace_replays_as_published_and_speeds_up(tmp_path: Path) -> None:
    path = TRACES / "azure-llm-2023-conv.csv"
    df = read_trace(path)
    assert {"ContextTokens", "GeneratedTokens"} <= set(df.columns) and df["t_s"].iloc[0] == 0
    base = parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "trace", "path": str(path)},
            "duration_s": 600,
            "size": {"seq_len": {"dist": "trace"}},
        }
    )
    fast = base.model_copy(update={"growth": 2.0})
    a, b = generate(base), generate(fast)
    assert len(b) == pytest.approx(2 * len(a), rel=0.1)
    assert a.seq_len is not None and a.seq_len[0] == int(df["ContextTokens"].iloc[0])


def test_a_trace_without_a_time_column_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "t.csv"
    f.write_text("when,size\n1,2\n")
    with pytest.raises(ScenarioError, match="TIMESTAMP"):
        read_trace(f)


def test_measured_service_interpolates_monotonically_and_stops_at_the_largest_batch() -> None:
    run = load_run(shipped_run("mlp"))
    m = from_run(run, "fp32")
    assert m.source == "measured" and m.max_batch == 64
    t, _ = m.table_for(None)
    meds = {p.batch: p.median_ms for p in t.points}
    base, scale = t.base(24)  # between 16 and 32
    assert base.batch in (16, 32) and meds[16] <= base.median_ms * scale <= max(meds[32], meds[16])
    with pytest.raises(ServiceError, match="above the largest measured batch"):
        t.base(65)
    with pytest.raises(ServiceError, match="pick --precision"):
        from_run(run)


def test_a_listed_profile_batch_is_sampled_exactly() -> None:
    m = from_profile(load_profile(ROOT / "profiles" / "example-accelerator.yaml"))
    s = m.sampler(np.random.default_rng(0))
    assert {s.draw(2) for _ in range(50)} == {0.012}
    assert {round(s.draw(8), 4) for _ in range(200)} <= {0.021, 0.0225, 0.0208, 0.0231}
    assert m.source == "assumed" and m.busy_power is not None and m.busy_power(8) == 320


def test_a_small_azure_format_trace_is_read_sorted_and_looped_to_fill_the_window(tmp_path: Path) -> None:
    f = tmp_path / "azure.csv"
    f.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,374,44\n"
        "2023-11-16 18:15:47.6805900,100,10\n"
        "2023-11-16 18:15:46.1805900,50,5\n"
    )
    df = read_trace(f)
    assert df["t_s"].tolist() == pytest.approx([0.0, 0.5, 1.5]) and df["ContextTokens"].tolist() == [
        50,
        374,
        100,
    ]
    s = parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "trace", "path": "azure.csv", "speedup": 2},
            "requests": 7,
            "size": {"seq_len": {"dist": "trace"}},
        },
        base_dir=tmp_path,
    )
    r = generate(s)
    # 2x faster: 0, 0.25, 0.75; the next loop starts one median gap (0.375 s) after the last request
    assert r.arrival_s[:4].tolist() == pytest.approx([0.0, 0.25, 0.75, 1.125]) and len(r) == 7
    assert r.seq_len is not None and r.seq_len.tolist() == [50, 374, 100, 50, 374, 100, 50]
    assert any("replayed 3 times" in n for n in r.notes)


def test_a_window_too_large_for_one_simulation_is_refused_before_generating() -> None:
    s = parse_scenario(
        {"name": "big", "arrivals": {"process": "poisson", "rate_rps": 1000}, "duration_s": 86_400}
    )
    with pytest.raises(ScenarioError, match="over the 10,000,000 limit"):
        generate(s)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_scenario_round_trips_through_yaml(path: Path) -> None:
    import yaml

    from planner.traffic.scenario import dump_scenario

    s = load_scenario(path)
    assert parse_scenario(yaml.safe_load(dump_scenario(s))) == s


def test_the_profile_round_trips_through_json() -> None:
    from planner.serving.profiles import AssumedProfile

    prof = load_profile(ROOT / "profiles" / "example-accelerator.yaml")
    assert AssumedProfile.model_validate_json(prof.model_dump_json()) == prof


def test_throttled_points_can_be_left_out_of_a_measured_service_model() -> None:
    from tests.conftest import make_run, ok_point

    hot = ok_point(batch=4, mean_ms=3.0).model_copy(update={"flags": ["power-capped"]})
    run = make_run([ok_point(batch=1), ok_point(batch=2, mean_ms=2.5), hot])
    assert from_run(run).max_batch == 4
    kept = from_run(run, exclude_flags=frozenset({"power-capped", "thermal-slowdown", "hw-slowdown"}))
    assert kept.max_batch == 2 and kept.power_reason  # and the run has no power: said, not guessed
