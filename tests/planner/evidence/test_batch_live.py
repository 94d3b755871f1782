"""A batch validation judged from curves measured in its own session, its canary, and older files."""

from __future__ import annotations

import numpy as np
import pytest

from planner.evidence.batch_live import Served, level_traffic, plan_validation, predict_level, validation
from planner.evidence.validation import BatchCanary, load_validation
from planner.traffic.scenario import parse_scenario
from tests.conftest import REPO, make_run, ok_point

SC = parse_scenario({"name": "t", "arrivals": {"process": "poisson", "rate_rps": 10}, "requests": 200})


def _served_fifo(arrivals_s: np.ndarray, service_s: float) -> Served:
    """One server, batch 1, a fixed service time: what a host that runs every call in service_s serves."""
    done = np.empty_like(arrivals_s)
    free = 0.0
    for i, t in enumerate(arrivals_s):
        free = max(free, t) + service_s
        done[i] = free
    n = arrivals_s.size
    return Served(arrivals_s, arrivals_s.copy(), done, [1] * n, [service_s] * n, 0.1)


def _plan():  # type: ignore[no-untyped-def]
    run = make_run([ok_point("fp32", 1, 2.0), ok_point("fp32", 2, 3.0)])
    return plan_validation(run, SC, "fp32", [0.5], 20.0, 1, 0.0)


def test_a_session_curve_judges_the_level_and_the_runs_prediction_is_kept_beside_it() -> None:
    plan = _plan()
    lsc, _, traffic = level_traffic(plan, 0.5)
    live = _served_fifo(traffic.arrival_s, 0.003)  # this host runs the 2 ms call in 3 ms
    rng = np.random.default_rng(0)
    curve = {1: (3.0 * (1 + 0.01 * rng.standard_normal(40))).tolist()}
    lv = predict_level(plan, 0.5, lsc, traffic, live, curve, canary_vs_run=1.5)
    assert lv.curve_median_ms is not None and lv.curve_median_ms[1] == pytest.approx(3.0, rel=0.01)
    assert lv.error_pct is not None and abs(lv.error_pct["p50_ms"]) < 5
    assert lv.error_from_run_pct is not None and lv.error_from_run_pct["p50_ms"] < -20
    why = next(d for d in lv.diagnosis if "from the run's own curves" in d)
    assert "took 1.50x the run's medians at batch 1" in why and "1.50x the run's mean" in why
    assert "the host itself changed" in why
    # without a curve the level is judged from the run's curves, and misses
    plain = predict_level(plan, 0.5, lsc, traffic, live)
    assert (
        plain.error_from_run_pct is None and plain.error_pct is not None and plain.error_pct["p50_ms"] < -20
    )
    assert plain.within_target is False


def test_a_level_measured_while_the_batch_canary_moved_is_kept_and_not_judged() -> None:
    plan = _plan()
    levels = []
    for load in (0.3, 0.5):
        lsc, _, traffic = level_traffic(plan, load)
        levels.append(predict_level(plan, load, lsc, traffic, _served_fifo(traffic.arrival_s, 0.002)))

    def c(mean: float, before: float | None) -> BatchCanary:
        return BatchCanary(before_load=before, mean_ms=mean, ci_half_ms=0.02, median_ms=mean, calls=30)

    v = validation(plan, "Poisson", levels, 1, [], [c(2.0, 0.3), c(2.02, 0.5), c(2.6, None)])
    assert v.levels[0].drift is None and v.levels[1].drift is not None and "2.6 ms" in v.levels[1].drift
    assert "not judged (the canary moved): load 0.5" in v.verdict and v.judged_from == "run"
    run_mean = plan.run.points[0].latency_ms.mean  # type: ignore[union-attr]
    assert v.canary_vs_run == pytest.approx(2.0 / run_mean)
    steady = validation(plan, "Poisson", levels, 1, [], [c(2.0, 0.3), c(2.02, 0.5), c(2.01, None)], 30)
    assert all(lv.drift is None for lv in steady.levels) and steady.judged_from == "session curves"


def test_a_version_2_validation_file_reads_as_judged_from_the_run() -> None:
    v = load_validation(
        REPO / "data" / "validations" / "validation-995335d5e803-fp32-b4-20261129T094337Z.json"
    )
    assert v.schema_version == 3 and v.judged_from == "run" and v.canaries == [] and v.canary_vs_run is None
    assert all(lv.drift is None and lv.predicted_from_run is None for lv in v.levels)


def test_a_miss_inside_the_measured_percentiles_own_ci_is_named_as_such() -> None:
    from types import SimpleNamespace

    from measure.core.stats import quantile_ci
    from planner.evidence.validation import compare_level

    rng = np.random.default_rng(3)
    n = 500  # a p99 from 450 measured requests: its CI spans the top few order statistics
    sched = np.cumsum(rng.exponential(0.05, n))
    lat = rng.lognormal(np.log(0.01), 0.5, n)
    m99 = float(np.percentile(lat[int(0.1 * n) :], 99) * 1000)
    lo, hi = quantile_ci(lat[int(0.1 * n) :], 0.99)
    assert lo is not None and hi is not None and hi * 1000 > 1.12 * m99  # the test's premise: a wide CI

    def level(p99_ms: float):  # type: ignore[no-untyped-def]
        m50 = float(np.percentile(lat[int(0.1 * n) :], 50) * 1000)
        pred = SimpleNamespace(
            stable=True,
            latency_ms=SimpleNamespace(p50=m50, p90=m50 * 2, p99=p99_ms),
            throughput_rps=20.0,
            mean_batch_size=1.0,
        )
        return compare_level(
            0.5,
            20.0,
            pred,
            sched,
            sched,
            sched + lat,
            [1] * n,
            [0.01] * n,
            0.1,
            lambda b: 10.0,
            0.1,
            2,  # type: ignore[arg-type]
        )

    measured99 = level(1.0).measured.p99_ms
    inside = level(min(hi * 1000, measured99 * 1.12))  # off by more than the 10% target, inside the CI
    assert inside.within_target is False and inside.measured_ci_ms is not None
    assert any("inside the 95% CI of the measured p99" in d for d in inside.diagnosis)
    outside = level(hi * 1000 * 1.5)
    assert not any("inside the 95% CI" in d for d in outside.diagnosis)
