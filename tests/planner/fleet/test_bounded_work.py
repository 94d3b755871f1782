"""What validates also simulates, and work is bounded before it starts: hostile scenarios, profiles, prices and
runs are refused with one line naming the field, or finish within a budget checked up front."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from measure.run import RunFileError, dump_run, parse_run
from planner.fleet.options import build_options
from planner.fleet.prices import PriceError, parse_prices
from planner.fleet.sizing import size_all
from planner.serving.profiles import load_profile
from planner.serving.service import ServiceError
from planner.serving.service_from import from_run
from planner.traffic.arrivals import generate
from planner.traffic.scenario import ScenarioError, load_scenario, parse_scenario, save_scenario
from tests.conftest import REPO, make_run, ok_point


def sc(arrivals: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "t", "arrivals": arrivals, "requests": 1000, **extra}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (sc({"process": "gamma", "rate_rps": 10, "cv": 1e-200}), "arrivals.gamma.cv"),
        (sc({"process": "gamma", "rate_rps": 10, "cv": 1e200}), "arrivals.gamma.cv"),
        (sc({"process": "poisson", "rate_rps": 1e308}), "arrivals.poisson.rate_rps"),
        (sc({"process": "poisson", "rate_rps": 5e-324}, growth=1e308), "growth"),
        (
            sc({"process": "poisson", "rate_rps": 1}, size={"items": {"dist": "fixed", "value": 10**23}}),
            "value",
        ),
        (
            sc({"process": "mmpp", "states": [{"rate_rps": 1, "mean_duration_s": 1e-9}] * 2}),
            "mean_duration_s",
        ),
        (sc({"process": "trace", "path": "x.csv", "speedup": 1e300}), "speedup"),
        ({"name": "t", "arrivals": {"process": "poisson", "rate_rps": 1}, "duration_s": 1e12}, "duration_s"),
        (sc({"process": "poisson", "rate_rps": 1}, name="n" * 300), "name"),
        (
            sc({"process": "poisson", "rate_rps": 1}, slo=[{"percentile": 99, "threshold_ms": 1e308}]),
            "threshold_ms",
        ),
    ],
)
def test_values_that_would_crash_the_simulation_are_refused_at_validation(data: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ScenarioError, match=field):
        parse_scenario(data)


def test_a_rate_too_low_to_place_arrivals_is_refused_at_validation() -> None:
    states = [{"rate_rps": 1e-9, "mean_duration_s": 1}, {"rate_rps": 0, "mean_duration_s": 1}]
    with pytest.raises(ScenarioError, match="use 0 for an idle state"):
        parse_scenario(sc({"process": "mmpp", "states": states}))
    mult = [1.0] + [1e-12] * 23
    with pytest.raises(ScenarioError, match="use 0 for an idle hour"):
        parse_scenario(sc({"process": "diurnal", "peak_rate_rps": 10, "hourly_multipliers": mult}))


@pytest.mark.timeout(20)
def test_an_mmpp_that_would_never_fill_its_window_is_refused_before_it_starts() -> None:
    slow = parse_scenario(
        sc(
            {
                "process": "mmpp",
                "states": [
                    {"rate_rps": 1e-6, "mean_duration_s": 0.001},
                    {"rate_rps": 0, "mean_duration_s": 1},
                ],
            }
        )
    )
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError, match="state sojourns"):
        generate(slow)
    assert time.perf_counter() - t0 < 5  # checked up front, not by walking the states


@pytest.mark.timeout(20)
def test_trace_replay_checks_its_loop_budget_before_building_loops(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("timestamp_s\n0\n1\n2\n")
    s = parse_scenario(
        {"name": "t", "arrivals": {"process": "trace", "path": str(trace)}, "duration_s": 3e7},
    )
    with pytest.raises(ScenarioError, match="loops"):
        generate(s)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("timestamp_s\n5\n5\n5\n", "positive time"),
        ("timestamp_s\n0\n1e300\n", "at most a year"),
        ("timestamp_s\n0\ninf\n", "infinite"),
        ("other\n1\n2\n", "needs a TIMESTAMP"),
    ],
)
def test_a_trace_that_cannot_be_replayed_is_a_one_line_error(
    tmp_path: Path, content: str, message: str
) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text(content)
    s = parse_scenario({"name": "t", "arrivals": {"process": "trace", "path": str(trace)}, "requests": 10})
    with pytest.raises(ScenarioError, match=message):
        generate(s)


@pytest.mark.timeout(20)
def test_a_trace_path_to_a_device_or_fifo_is_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    link = tmp_path / "zero.csv"
    link.symlink_to("/dev/zero")
    for p in (fifo, link):
        s = parse_scenario({"name": "t", "arrivals": {"process": "trace", "path": str(p)}, "requests": 10})
        with pytest.raises(ScenarioError, match="not a regular file"):
            generate(s)


def test_a_scenario_is_not_saved_over_an_existing_file_unless_asked(tmp_path: Path) -> None:
    s = load_scenario(REPO / "scenarios" / "steady-api.yaml").model_copy(update={"seed": 101})
    first = save_scenario(s, tmp_path)
    with pytest.raises(ScenarioError, match="already exists"):
        save_scenario(s.model_copy(update={"seed": 202}), tmp_path)
    assert "seed: 101" in first.read_text()
    save_scenario(s.model_copy(update={"seed": 202}), tmp_path, overwrite=True)
    assert "seed: 202" in first.read_text()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda p: p["points"][0]["latency"].update(ms=5e-324), "latency.deterministic.ms"),
        (lambda p: p["points"][0]["latency"].update(ms=1e308), "latency.deterministic.ms"),
        (lambda p: p["points"][0].update(batch=10**7), "batch"),
        (lambda p: p.update(units_per_item=1e308), "units_per_item"),
    ],
)
def test_profile_values_outside_physical_ranges_are_refused(tmp_path: Path, edit, field: str) -> None:  # type: ignore[no-untyped-def]
    import yaml

    prof = {
        "kind": "assumed-profile",
        "name": "p",
        "device": "d",
        "points": [{"batch": 1, "latency": {"dist": "deterministic", "ms": 2.0}}],
    }
    edit(prof)
    p = tmp_path / "p.yaml"
    p.write_text(yaml.safe_dump(prof))
    with pytest.raises(ScenarioError, match=field):
        load_profile(p)


@pytest.mark.parametrize(("price", "ok"), [(5e-324, False), (1.7e308, False), (2.5, True)])
def test_prices_outside_physical_ranges_are_refused(price: float, ok: bool) -> None:
    book = {
        "kind": "price-book",
        "electricity": {"source": "s", "as_of": "2026-01-01", "usd_per_kwh": 0.1, "pue": 1.2},
        "devices": [
            {
                "device": "d",
                "on_demand": {
                    "source": "s",
                    "as_of": "2026-01-01",
                    "usd_per_hour": price,
                    "energy_included": True,
                },
            }
        ],
    }
    if ok:
        assert parse_prices(book).devices[0].on_demand is not None
    else:
        with pytest.raises(PriceError, match="usd_per_hour"):
            parse_prices(book)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["points"][0]["latency_ms"].update(min=5e-324), "latency_ms.min"),
        (lambda d: d["points"][0]["raw_latencies_ms"].__setitem__(0, 1e308), "raw_latencies_ms.0"),
        (lambda d: d["points"][0].update(batch_size=10**7), "batch_size"),
        (lambda d: d["points"][0].update(throughput_items_per_s=1e300), "throughput_items_per_s"),
    ],
)
def test_run_values_outside_physical_ranges_are_refused(edit, field: str) -> None:  # type: ignore[no-untyped-def]
    import json

    d = json.loads(dump_run(make_run()))
    edit(d)
    with pytest.raises(RunFileError, match=field):
        parse_run(json.dumps(d), verify_id=False)


@pytest.mark.timeout(30)
def test_the_sustainable_rate_of_a_huge_batch_is_computed_without_walking_every_size() -> None:
    run = make_run([ok_point("fp32", 1, 2.0), ok_point("fp32", 65_536, 900.0)])
    model = from_run(run, "fp32")
    evaluated: list[int] = []
    mean_service_s = model.mean_service_s
    model.mean_service_s = lambda b, s=None: evaluated.append(b) or mean_service_s(b, s)  # type: ignore[method-assign]
    rate = model.sustainable_items_per_s(65_536)
    assert len(evaluated) < 1000 and {1, 65_536} <= set(evaluated)
    model.mean_service_s = mean_service_s  # type: ignore[method-assign]
    assert rate == pytest.approx(max(1 / model.mean_service_s(1), 65_536 / model.mean_service_s(65_536)))
    # up to EXACT_BATCHES every size is still evaluated: the answer for small batches is unchanged
    small = make_run([ok_point("fp32", 1, 2.0), ok_point("fp32", 8, 5.0)])
    m2 = from_run(small, "fp32")
    assert m2.sustainable_items_per_s(8) == max(b / m2.mean_service_s(b) for b in range(1, 9))


def test_sizing_workers_use_the_parsed_runs_not_the_files(tmp_path: Path) -> None:
    from measure.run import save_run

    path = save_run(make_run([ok_point("fp32", 1, 2.0), ok_point("fp32", 2, 3.0)]), tmp_path)
    s = parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "poisson", "rate_rps": 100},
            "requests": 2000,
            "slo": [{"percentile": 99, "threshold_ms": 50}],
        }
    )
    options, _ = build_options([path], [], None, [1, 2], [0.0], "central", scenario=s)
    path.write_text("swapped after the check")  # a worker process that re-read the file would fail here
    sized = size_all(s, options, sizing_requests=2000, jobs=2)
    assert len(sized) == 2  # two options: the pool runs them in worker processes
    assert all(o.error is None and o.levels[0].replicas is not None for o in sized)


def test_a_service_model_from_a_run_at_the_bounds_still_simulates() -> None:
    run = make_run([ok_point("fp32", 1, 1e-3), ok_point("fp32", 2, 1e-3)])
    model = from_run(run, "fp32")
    assert np.isfinite(model.sustainable_items_per_s(2))
    with pytest.raises(ServiceError):
        model.table_for(None)[0].base(4)
