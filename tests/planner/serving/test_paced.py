"""Service times conditioned on the idle time before a batch, and the warnings of unpaced or contended runs."""

from __future__ import annotations

import numpy as np
import pytest

from measure.run import Paced, PacedBin, Point, unavailable
from planner.serving.service import PacedBatch, samples_latency
from planner.serving.service_from import NO_PACING, from_run
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import run_simulation
from planner.traffic.scenario import parse_scenario
from tests.conftest import make_run, ok_point, summary_of


def paced_point(batch: int, mean_ms: float, gap_ms: float, paced_ms: float) -> Point:
    rng = np.random.default_rng(7)
    slow = (paced_ms * (1 + 0.05 * rng.standard_normal(200))).clip(0.1).tolist()
    gaps = [gap_ms] * 200
    bin_ = PacedBin(
        gap_ms=gap_ms,
        gap_actual_ms=summary_of([*gaps[:-1], gap_ms * 1.01]),
        latency_ms=summary_of(slow),
        converged=True,
        stop_reason="test",
        elapsed_s=1.0,
        sm_clock_mhz_at_start=unavailable("CPU"),
        raw_latencies_ms=slow,
    )
    return ok_point("fp32", batch, mean_ms).model_copy(update={"paced": Paced(mode="gaps", bins=[bin_])})


def scenario(rate: float):  # type: ignore[no-untyped-def]
    return parse_scenario(
        {"name": "t", "arrivals": {"process": "poisson", "rate_rps": rate}, "requests": 20_000, "seed": 3}
    )


def test_a_batch_after_a_long_idle_takes_the_paced_bins_time_not_the_back_to_back_one() -> None:
    # back to back 10 ms; after 5 ms of idle 20 ms. At 5 req/s almost every batch follows a long idle.
    paced = make_run([paced_point(1, 10.0, 5.0, 20.0)])
    unpaced = make_run([ok_point("fp32", 1, 10.0)])
    sc = scenario(5.0)
    slow = run_simulation(sc, from_run(paced), 1, "central", BatchPolicy(1, 0))
    fast = run_simulation(sc, from_run(unpaced), 1, "central", BatchPolicy(1, 0))
    assert slow.latency_ms is not None and fast.latency_ms is not None
    assert slow.latency_ms.p50 / fast.latency_ms.p50 == pytest.approx(2.0, rel=0.06)
    assert not any(NO_PACING in w for w in slow.warnings)
    assert any(NO_PACING in w for w in fast.warnings)
    assert any("longer than the longest gap measured" in w for w in slow.warnings)


def test_back_to_back_batches_keep_the_back_to_back_time() -> None:
    # at 95% busy most batches start the instant the last one ends: gap 0, the 10 ms samples
    paced = make_run([paced_point(1, 10.0, 50.0, 20.0)])
    r = run_simulation(scenario(60.0), from_run(paced), 1, "central", BatchPolicy(1, 0))
    back = run_simulation(
        scenario(60.0), from_run(make_run([ok_point("fp32", 1, 10.0)])), 1, "central", BatchPolicy(1, 0)
    )
    assert r.utilization is not None and back.utilization is not None
    # only batches after an idle spell pay more: utilization rises, far less than 2x
    assert back.utilization < r.utilization < back.utilization * 1.5


def test_between_two_measured_gaps_the_draw_mixes_the_bins_in_proportion() -> None:
    pb = PacedBatch((0.0, 0.004), (samples_latency(1, np.array([1.0])), samples_latency(1, np.array([2.0]))))
    u = np.random.default_rng(0).random(20_000)
    picks = np.array([pb.pick(0.001, x)[0] for x in u])  # a quarter of the way to the 4 ms bin
    assert picks.mean() == pytest.approx(0.25, abs=0.02)
    assert pb.pick(0.0, 0.0) == (0, False) and pb.pick(0.004, 0.9) == (1, False)
    assert pb.pick(1.0, 0.5) == (1, True)  # beyond the longest gap: that bin, and counted


def contended_point(batch: int, other_share: float) -> Point:
    """An ok point flagged contended: other processes took `other_share` of the CPUs while it was measured."""
    from measure.run import Contention

    return ok_point("fp32", batch, 3.0).model_copy(
        update={
            "flags": ["contended"],
            "contention": Contention(
                load1_before=3.0,
                load1_after=3.1,
                cpus=2,
                other_cpu_share=other_share,
                steal_share=0.0,
                contended=True,
                reason=f"other processes used {other_share:.0%} of the CPUs (limit 20%)",
            ),
        }
    )


def test_a_contended_point_is_named_in_the_models_warnings() -> None:
    busy = contended_point(4, 0.5)
    model = from_run(make_run([ok_point("fp32", 1), busy]))
    assert any(
        "batch 4 measured while the machine was contended (other processes used 50%" in w
        for w in model.warnings
    )
