"""Soak mode: durations, windowing at chunk edges, the peak-vs-steady verdict, and a short real soak."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from measure.batch.soak import early_seconds, parse_duration, run_soak, verdict, windows
from measure.core import stats
from measure.core.parsing import SweepError
from measure.core.steady_state import SamplingConfig
from measure.inprocess.plan import SweepRequest, plan_sweep
from measure.run import Unavailable
from measure.sensors.power import Sample
from measure.sensors.telemetry import Mark


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("90s", 90), ("1h30m", 5400), ("45", 45), ("2.5m", 150)]
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5m", "0s", "10 minutes", "m"])
def test_bad_durations_are_one_line_errors(text: str) -> None:
    with pytest.raises(SweepError, match="duration"):
        parse_duration(text)


def synthetic(tput: list[float], window_s: float = 10.0, chunks_per_window: int = 10, batch: int = 4):
    """Marks and latencies for windows of known throughput (items/s), chunks evenly inside each window."""
    marks, lat, samples = [Mark(0, 0.0, 0.0)], [], []
    n, t, e = 0, 0.0, 0.0
    for w, x in enumerate(tput):
        per_iter_s = batch / x
        its = round(window_s / chunks_per_window / per_iter_s)
        for _ in range(chunks_per_window):
            n, t, e = n + its, t + its * per_iter_s, e + its * per_iter_s * (200.0 + 10 * w)
            lat += [per_iter_s * 1000] * its
            marks.append(Mark(n, t, e))
            samples.append(Sample(t_s=t, power_w=200.0 + 10 * w, sm_mhz=1980.0, temp_c=50.0 + w))
    return marks, np.asarray(lat), samples


def test_windows_recover_per_window_throughput_power_and_energy() -> None:
    marks, lat, samples = synthetic([1000.0, 900.0, 800.0])
    ws = windows(marks, lat, samples, 4, 10.0, energy_counter=True)
    assert [round(w.throughput_items_per_s) for w in ws] == [1000, 900, 800]
    assert [w.power_mean_w for w in ws] == [200.0, 210.0, 220.0]
    assert ws[1].energy_per_item_j == pytest.approx(210.0 / 900.0)
    assert (
        ws[2].temperature_max_c == 52.0
        and ws[0].start_s == 0.0
        and ws[2].end_s == pytest.approx(30.0, rel=0.01)
    )


def test_a_fast_start_that_settles_lower_is_called_a_peak() -> None:
    rng = np.random.default_rng(1)
    tput = [1100.0 + rng.normal(0, 5) for _ in range(12)] + [1000.0 + rng.normal(0, 5) for _ in range(48)]
    marks, lat, samples = synthetic(tput)
    ws = windows(marks, lat, samples, 4, 10.0, energy_counter=True)
    early = early_seconds(ws[-1].end_s, 10.0)
    assert early == pytest.approx(120.0, rel=1e-3)
    comps, text = verdict(ws, early)
    t = next(c for c in comps if c.quantity == "throughput_items_per_s")
    assert t.significant and t.relative_change == pytest.approx(-0.09, abs=0.01)
    assert text.startswith("peak differs from steady state")


def test_a_flat_series_is_steady_from_the_start() -> None:
    rng = np.random.default_rng(2)
    marks, lat, samples = synthetic([1000.0 + rng.normal(0, 5) for _ in range(30)])
    ws = windows(marks, lat, samples, 4, 10.0, energy_counter=True)
    comps, text = verdict(ws, early_seconds(ws[-1].end_s, 10.0))
    assert not next(c for c in comps if c.quantity == "throughput_items_per_s").significant
    assert text.startswith("steady from the start")


def test_early_vs_rest_needs_a_practical_difference_not_just_significance() -> None:
    early = 1000.0 + np.arange(20) * 0.01
    rest = 1001.0 + np.arange(200) * 0.01  # always larger, so p is tiny, but only +0.1%
    v = stats.early_vs_rest(early, rest)
    assert v.p_value is not None and v.p_value < 1e-6 and not v.significant


FAST = SamplingConfig(
    ci_target=0.05, min_iterations=10, min_seconds=0.05, max_seconds=0.5, check_interval_s=0.02
)


def soak_request(**kw: object) -> SweepRequest:
    base: dict[str, object] = dict(
        workload="mlp",
        params={"in_features": 16, "width": 32, "layers": 1, "classes": 8},
        device="cpu",
        precisions=["fp32"],
        batch_sizes=[4],
        sampling=FAST,
        idle_seconds=0.0,
    )
    base.update(kw)
    return SweepRequest(**base)  # type: ignore[arg-type]


def test_a_short_cpu_soak_stores_windows_a_point_and_a_verdict() -> None:
    plan = plan_sweep(soak_request(), command=["test"])
    ticks: list[float] = []
    res = run_soak(plan, 2.0, 0.25, ticks.append)
    run = res.run
    assert not res.interrupted and run.sweep.complete and run.soak is not None
    assert 6 <= len(run.soak.windows) <= 9 and run.soak.duration_s == pytest.approx(2.0, abs=0.3)
    (point,) = run.points
    assert point.status in ("ok", "unstable") and point.measured_iterations > 100
    total = sum(w.iterations for w in run.soak.windows)
    assert total <= point.measured_iterations + point.warmup_iterations_excluded
    assert run.soak.comparisons[0].quantity == "throughput_items_per_s" and run.soak.verdict
    assert ticks and ticks[-1] >= 2.0
    assert run.quality is not None and run.quality.entries[0].status == "ok"
    assert any("soak" in n for n in run.methodology.notes)


def test_a_soak_takes_one_point_and_enough_windows() -> None:
    plan = plan_sweep(soak_request(batch_sizes=[1, 2]), command=["test"])
    with pytest.raises(SweepError, match="one point"):
        run_soak(plan, 10.0, 1.0)
    plan = plan_sweep(soak_request(), command=["test"])
    with pytest.raises(SweepError, match="fewer than 4 windows"):
        run_soak(plan, 3.0, 1.0)


def test_a_soak_with_readable_rapl_stores_power_and_energy_per_window(tmp_path: Path) -> None:
    from tests.measure.sensors.test_telemetry import FakeRapl

    with FakeRapl(tmp_path, watts=30.0):
        plan = plan_sweep(soak_request(idle_seconds=0.3), command=["test"], powercap_root=tmp_path)
        run = run_soak(plan, 2.0, 0.4).run
    assert run.soak is not None and run.idle_power is not None
    ws = run.soak.windows
    assert all(w.energy_per_item_j is not None and w.power_mean_w is not None for w in ws)
    assert np.median([w.power_mean_w for w in ws]) == pytest.approx(30.0, rel=0.25)
    assert any(c.quantity == "power_mean_w" for c in run.soak.comparisons)
    tel = run.points[0].telemetry
    assert tel is not None and not isinstance(tel, Unavailable) and not isinstance(tel.energy, Unavailable)
