"""The simulator against queueing theory where theory is exact, and properties where it is not.

Tolerances: each comparison allows 3.5 times the simulation's own 95% batch-means half-width (about a 99.9%
band for a correct simulator) plus 1% for the bias left by a finite warm-up cut; the sample sizes are chosen
so that this band is a few percent wide.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from planner.serving.profiles import AssumedProfile
from planner.serving.service_from import from_profile
from planner.serving.sim import BatchPolicy, simulate
from planner.serving.simulation import SimResult, run_simulation
from planner.traffic.scenario import parse_scenario


def model(latency: dict[str, Any], batches: tuple[int, ...] = (1,), power: dict[str, Any] | None = None):  # type: ignore[no-untyped-def]
    points = [{"batch": b, "latency": latency} for b in batches]
    data: dict[str, Any] = {"kind": "assumed-profile", "name": "t", "device": "t", "points": points}
    if power:
        data["power_w"] = power
    return from_profile(AssumedProfile.model_validate(data))


def scenario(rate: float, n: int = 200_000, seed: int = 1, **kw: Any):  # type: ignore[no-untyped-def]
    return parse_scenario(
        {"name": "t", "arrivals": {"process": "poisson", "rate_rps": rate}, "requests": n, "seed": seed, **kw}
    )


def close(sim: float, theory: float, halfwidth: float | None) -> bool:
    assert halfwidth is not None
    return abs(sim - theory) <= 3.5 * halfwidth + 0.01 * theory


MU = 100.0  # exponential service with mean 10 ms


def test_mm1_latency_percentiles_match_the_exponential_sojourn_time() -> None:
    lam = 80.0
    r = run_simulation(
        scenario(lam), model({"dist": "exponential", "mean_ms": 10}), 1, "central", BatchPolicy(1, 0)
    )
    assert r.stable and r.latency_ms is not None and r.latency_ci95_halfwidth_ms is not None
    rate = MU - lam  # sojourn time of M/M/1 FCFS is exponential with rate mu - lambda
    for key, q in (("mean", None), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        theory = 1000.0 / rate if q is None else -math.log(1 - q) / rate * 1000.0
        assert close(getattr(r.latency_ms, key), theory, getattr(r.latency_ci95_halfwidth_ms, key)), key
    assert r.utilization == pytest.approx(lam / MU, rel=0.02)
    assert r.throughput_rps == pytest.approx(r.offered_rps, rel=0.01) and r.offered_rps == pytest.approx(
        lam, rel=0.01
    )


def erlang_c(c: int, a: float) -> float:
    """Probability of waiting in M/M/c with offered load a = lambda / mu (Erlang C)."""
    rho = a / c
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def test_mmc_central_queue_matches_erlang_c_mean_wait_and_wait_tail() -> None:
    c, lam = 4, 320.0
    r = run_simulation(
        scenario(lam), model({"dist": "exponential", "mean_ms": 10}), c, "central", BatchPolicy(1, 0)
    )
    pw = erlang_c(c, lam / MU)
    wq = pw / (c * MU - lam) * 1000.0
    assert r.queue_ms is not None and r.queue_ci95_halfwidth_ms is not None
    assert close(r.queue_ms.mean, wq, r.queue_ci95_halfwidth_ms.mean)
    # P(W > t) = C e^{-(c mu - lambda) t}: the wait's percentile q above 1 - C is ln(C / (1 - q)) / (c mu - lambda)
    p99 = math.log(pw / 0.01) / (c * MU - lam) * 1000.0
    assert close(r.queue_ms.p99, p99, r.queue_ci95_halfwidth_ms.p99)


def test_md1_mean_wait_matches_pollaczek_khinchine() -> None:
    lam = 80.0
    r = run_simulation(
        scenario(lam), model({"dist": "deterministic", "ms": 10}), 1, "central", BatchPolicy(1, 0)
    )
    rho = lam / MU
    wq = rho / (2 * MU * (1 - rho)) * 1000.0  # 20 ms
    assert r.queue_ms is not None and r.queue_ci95_halfwidth_ms is not None
    assert close(r.queue_ms.mean, wq, r.queue_ci95_halfwidth_ms.mean)


def test_random_routing_is_independent_mm1_queues() -> None:
    c, lam = 4, 320.0  # each replica sees Poisson(80)
    r = run_simulation(
        scenario(lam), model({"dist": "exponential", "mean_ms": 10}), c, "random", BatchPolicy(1, 0)
    )
    assert r.latency_ms is not None and r.latency_ci95_halfwidth_ms is not None
    assert close(r.latency_ms.mean, 1000.0 / (MU - lam / c), r.latency_ci95_halfwidth_ms.mean)
    assert close(r.latency_ms.p99, math.log(100) / (MU - lam / c) * 1000.0, r.latency_ci95_halfwidth_ms.p99)


def test_jsq_and_central_beat_random_routing() -> None:
    m = model({"dist": "exponential", "mean_ms": 10})
    res = {
        rt: run_simulation(scenario(320.0, 60_000), m, 4, rt, BatchPolicy(1, 0))
        for rt in ("random", "rr", "jsq", "central")
    }
    mean = {k: v.latency_ms.mean for k, v in res.items() if v.latency_ms}
    assert mean["central"] < mean["jsq"] < mean["rr"] < mean["random"]


def test_latency_does_not_decrease_with_arrival_rate() -> None:
    points = [
        {"batch": b, "latency": {"dist": "lognormal", "median_ms": 4 + 1.5 * b, "sigma": 0.2}}
        for b in (1, 2, 4, 8)
    ]
    m = from_profile(
        AssumedProfile.model_validate(
            {"kind": "assumed-profile", "name": "t", "device": "t", "points": points}
        )
    )
    prev = None
    for rate in (50.0, 150.0, 300.0, 400.0, 470.0):  # sustainable: 8 / 16 ms = 500 req/s
        r = run_simulation(scenario(rate, 40_000), m, 1, "central", BatchPolicy(8, 0.002))
        assert r.latency_ms is not None and r.latency_ci95_halfwidth_ms is not None
        cur = (r.latency_ms.mean, r.latency_ci95_halfwidth_ms.mean)
        if prev is not None:  # non-decreasing up to the two runs' sampling error
            assert cur[0] >= prev[0] - 3 * (cur[1] + prev[1]), (rate, cur, prev)
        prev = cur


def test_with_max_batch_one_the_delay_knob_changes_nothing() -> None:
    m = model({"dist": "exponential", "mean_ms": 10})
    a = run_simulation(scenario(60.0, 20_000), m, 2, "central", BatchPolicy(1, 0.0))
    b = run_simulation(scenario(60.0, 20_000), m, 2, "central", BatchPolicy(1, 0.050))
    assert a.latency_ms == b.latency_ms and a.queue_ms == b.queue_ms


def test_energy_is_never_below_idle_power_times_duration() -> None:
    m = model(
        {"dist": "lognormal", "median_ms": 8, "sigma": 0.3},
        batches=(1, 4),
        power={"idle": 60, "busy": {1: 200, 4: 320}},
    )
    for rate, replicas in ((20.0, 1), (200.0, 4), (400.0, 8)):
        r = run_simulation(scenario(rate, 20_000), m, replicas, "central", BatchPolicy(4, 0.001))
        assert r.energy_j_per_request is not None and r.utilization is not None
        served = r.requests_total - r.rejected
        span = r.requests_total / r.offered_rps  # arrivals window; the run lasts at least this long
        assert r.energy_j_per_request * served >= 60 * replicas * span * 0.999


def test_same_seed_same_result_and_another_seed_differs() -> None:
    m = model({"dist": "exponential", "mean_ms": 10}, batches=(1, 2, 4))
    runs = [
        run_simulation(scenario(150.0, 20_000, seed=s), m, 2, "jsq", BatchPolicy(4, 0.003)) for s in (5, 5, 6)
    ]
    assert runs[0].model_dump() == runs[1].model_dump()
    assert runs[0].latency_ms != runs[2].latency_ms


def test_overload_is_reported_unstable_with_the_sustainable_rate_and_no_percentiles() -> None:
    r = run_simulation(
        scenario(150.0, 10_000), model({"dist": "deterministic", "ms": 10}), 1, "central", BatchPolicy(1, 0)
    )
    assert not r.stable and r.latency_ms is None and r.sustainable_rps == pytest.approx(100.0)


def batch_starts(
    arrivals: list[float], max_batch: int, max_delay_s: float, service_s: float, capacity: int | None = None
):  # type: ignore[no-untyped-def]
    a = np.array(arrivals)
    out = simulate(
        a,
        np.ones(a.size, dtype=np.int64),
        None,
        1,
        "central",
        BatchPolicy(max_batch, max_delay_s, capacity),
        lambda b, s, _idle: service_s,
        np.random.default_rng(0),
    )
    return out


def test_the_batcher_launches_when_full_or_when_the_oldest_has_waited_max_delay() -> None:
    out = batch_starts(
        [0.0, 0.001, 0.002, 0.020, 0.050, 0.051], max_batch=3, max_delay_s=0.010, service_s=0.005
    )
    # full at 2 ms; alone at 20 ms -> deadline 30 ms; 50 and 51 ms -> deadline 60 ms
    assert out.start_s.tolist() == pytest.approx([0.002, 0.002, 0.002, 0.030, 0.060, 0.060])
    assert out.batch_sizes == [3, 1, 2]


def test_a_busy_replica_takes_everything_queued_up_to_max_batch_when_it_frees() -> None:
    out = batch_starts([0.0, 0.001, 0.002, 0.003, 0.004], max_batch=2, max_delay_s=0.0, service_s=0.010)
    # zero delay: 0 alone; at 10 ms four are queued -> two batches of 2 back to back
    assert out.start_s.tolist() == pytest.approx([0.0, 0.010, 0.010, 0.020, 0.020])


def test_a_bounded_queue_rejects_and_counts() -> None:
    out = batch_starts(
        [0.0, 0.001, 0.002, 0.003, 0.004], max_batch=1, max_delay_s=0.0, service_s=0.010, capacity=2
    )
    assert out.rejected.tolist() == [False, False, False, True, True]
    assert np.isnan(out.done_s[3]) and out.done_s[2] == pytest.approx(0.030)


@pytest.mark.parametrize("router", ["central", "random", "rr", "jsq"])
def test_every_request_completes_once_under_every_router(router: str) -> None:
    m = model({"dist": "lognormal", "median_ms": 8, "sigma": 0.3}, batches=(1, 2, 4, 8))
    sc = scenario(400.0, 5_000, size={"items": {"dist": "uniform", "low": 1, "high": 3}})
    r: SimResult = run_simulation(sc, m, 3, router, BatchPolicy(8, 0.004))  # type: ignore[arg-type]
    assert r.stable and r.rejected == 0 and r.requests_measured == 5_000 - r.warmup_excluded
    assert sum(int(k) * v for k, v in r.batch_size_histogram.items()) >= 5_000  # items served
    assert max(int(k) for k in r.batch_size_histogram) <= 8
