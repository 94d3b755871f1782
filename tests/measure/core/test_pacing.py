"""Paced measurement: the --pacing grammar, idle gaps kept as asked (fake clock), and a real paced CPU sweep."""

from __future__ import annotations

import pytest

from measure.batch.resume import request_from_run
from measure.batch.sweep import run_sweep
from measure.core.pacing import PacingError, parse_pacing, sample_paced
from measure.core.parsing import SweepError
from measure.core.steady_state import SamplingConfig
from tests.measure.batch.test_sweep import request


def test_pacing_reads_gaps_with_units_and_loads_as_mean_idle_periods() -> None:
    spec = parse_pacing("gaps=0,500us,1ms,0.03s")
    assert spec.mode == "gaps" and spec.gaps_ms(10.0) == [0.5, 1.0, 30.0]  # 0 is the back-to-back point
    load = parse_pacing("load=0.5,0.25")
    assert load.gaps_ms(10.0) == [20.0, 40.0]  # an M/G/1 idle period lasts service / load on average


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gaps", "use gaps="),
        ("gaps=0", "at least one gap above 0"),
        ("gaps=5min", "a number with us, ms or s"),
        ("gaps=20s", "must be in 0..10000 ms"),
        ("load=1.2", "must be in (0, 1)"),
        ("load=" + ",".join(["0.5"] * 17), "1..16 values"),
        ("speed=2", "use gaps="),
    ],
)
def test_a_bad_pacing_is_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(PacingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_pacing(text)


def test_each_paced_iteration_follows_the_asked_gap_and_the_bin_stops_on_its_ci() -> None:
    now = [0.0]
    slept: list[float] = []

    def clock() -> float:
        now[0] += 1e-5  # every look at the clock costs 10 us
        return now[0]

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    def timer(step: object, n: int) -> list[float]:
        now[0] += 0.002
        return [2.0] * n

    got = sample_paced(
        lambda: None, timer, 5.0, SamplingConfig(min_iterations=10, min_seconds=0.0), clock, sleep
    )
    assert got.converged and len(got.latencies_ms) >= 10
    assert all(g >= 5.0 for g in got.gaps_ms) and max(got.gaps_ms) < 5.2
    assert all(s == pytest.approx(0.0045, abs=2e-4) for s in slept)  # the last half millisecond is spun


def test_a_paced_cpu_sweep_records_bins_contention_and_resumes_with_its_pacing() -> None:
    res = run_sweep(request(batch_sizes=[1], pacing="gaps=0,2ms"), command=["test"])
    point = res.run.points[0]
    assert point.paced is not None and [b.gap_ms for b in point.paced.bins] == [2.0]
    assert point.paced.bins[0].gap_actual_ms.min >= 2.0
    assert point.contention is not None  # a reading, or unavailable with the reason
    assert res.run.sweep.pacing == "gaps=0,2ms"
    assert request_from_run(res.run).pacing == "gaps=0,2ms"


def test_a_bad_pacing_stops_the_sweep_before_it_measures() -> None:
    with pytest.raises((SweepError, PacingError), match="a load must be in"):
        run_sweep(request(pacing="load=2"))
