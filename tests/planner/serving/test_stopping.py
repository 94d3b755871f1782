"""Sequential stopping: pausing a simulation changes nothing, a settled verdict stops it, an unsettled one
does not, and heavy traffic never passes on a calm start."""

from __future__ import annotations

from typing import Any

import numpy as np

from planner.serving import stopping
from planner.serving.profiles import AssumedProfile
from planner.serving.service_from import from_profile
from planner.serving.sim import BatchPolicy, simulate
from planner.serving.simulation import run_simulation
from planner.traffic.scenario import Slo, parse_scenario


def model(mean_ms: float):  # type: ignore[no-untyped-def]
    data: dict[str, Any] = {
        "kind": "assumed-profile",
        "name": "t",
        "device": "t",
        "points": [{"batch": 1, "latency": {"dist": "exponential", "mean_ms": mean_ms}}],
    }
    return from_profile(AssumedProfile.model_validate(data))


def scenario(rate: float, threshold_ms: float, n: int = 30_000):  # type: ignore[no-untyped-def]
    return parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "poisson", "rate_rps": rate},
            "requests": n,
            "seed": 4,
            "slo": [{"metric": "latency", "percentile": 99, "threshold_ms": threshold_ms}],
        }
    )


def test_pausing_at_looks_gives_exactly_the_times_of_an_uninterrupted_run() -> None:
    rng = np.random.default_rng(2)
    n = 5_000
    arrivals = np.cumsum(rng.exponential(1 / 500, n))
    items = rng.integers(1, 4, n)

    def draw_from(seed: int):  # type: ignore[no-untyped-def]
        r = np.random.default_rng(seed)
        return lambda b, _s, _i: 0.002 * b + r.exponential(0.001)

    for router in ("central", "rr", "jsq"):
        args = (arrivals, items, None, 3, router, BatchPolicy(8, 0.002))
        whole = simulate(*args, draw_from(1), np.random.default_rng(0))
        seen: list[int] = []

        def never(k: int, _s: np.ndarray, _d: np.ndarray, _u: float, seen: list[int] = seen) -> bool:
            seen.append(k)
            return False

        paused = simulate(
            *args, draw_from(1), np.random.default_rng(0), looks=(10, 1_000, 1_001, 4_000), stop=never
        )
        assert len(seen) == 4 and paused.simulated == n
        assert np.array_equal(whole.done_s, paused.done_s) and whole.batch_sizes == paused.batch_sizes


def test_a_stop_keeps_the_decided_requests_exact_and_leaves_the_rest_undecided() -> None:
    rng = np.random.default_rng(3)
    n = 4_000
    arrivals = np.cumsum(rng.exponential(1 / 300, n))
    items = np.ones(n, dtype=np.int64)
    args = (arrivals, items, None, 2, "central", BatchPolicy(4, 0.0))
    whole = simulate(*args, lambda b, _s, _i: 0.004, np.random.default_rng(0))
    part = simulate(
        *args, lambda b, _s, _i: 0.004, np.random.default_rng(0), looks=(2_000,), stop=lambda *_: True
    )
    assert 1_900 < part.simulated < 2_000
    k = part.simulated
    assert np.array_equal(part.done_s[:k], whole.done_s[:k])
    assert np.isnan(part.done_s[-1])


def test_a_count_far_from_its_threshold_stops_early_with_the_full_length_verdict() -> None:
    sc = scenario(50.0, 100.0)  # M/M/1 at 50% busy, 10 ms mean: p99 = 92 ms ... far under 1 s
    far = sc.model_copy(update={"slo": [Slo(metric="latency", percentile=99, threshold_ms=1000)]})
    early = run_simulation(far, model(10), 1, "central", BatchPolicy(1, 0), early_stop=True)
    full = run_simulation(far, model(10), 1, "central", BatchPolicy(1, 0))
    assert early.stopped_early is not None and "met" in early.stopped_early
    assert early.requests_measured < full.requests_measured / 3
    assert early.slo[0].met and full.slo[0].met
    missed = sc.model_copy(update={"slo": [Slo(metric="latency", percentile=99, threshold_ms=20)]})
    early = run_simulation(missed, model(10), 1, "central", BatchPolicy(1, 0), early_stop=True)
    assert early.stopped_early is not None and "missed" in early.stopped_early and not early.slo[0].met


def test_a_count_at_its_threshold_runs_to_full_length() -> None:
    # M/M/1, mu=100, lambda=50: the sojourn time is exponential with rate 50/s, so p99 = 92.1 ms
    r = run_simulation(scenario(50.0, 92.1), model(10), 1, "central", BatchPolicy(1, 0), early_stop=True)
    assert r.stopped_early is None and r.requests_measured == 27_000


def test_heavy_traffic_never_passes_early_however_calm_the_start() -> None:
    lat = np.full(8_000, 0.010)
    lat[::50] = 0.020  # a p99 of 20 ms, with no spread between batches
    slo = [Slo(metric="latency", percentile=99, threshold_ms=100)]
    calm = stopping.settle(slo, lat, lat, 3, utilization=0.5)
    assert calm is not None and calm.met and calm.reason.startswith("p99 latency 20 ± ")
    assert stopping.settle(slo, lat, lat, 3, utilization=0.9) is None


def test_a_percentile_with_too_few_requests_per_batch_is_not_judged() -> None:
    lat = np.full(3_000, 0.5)  # way over the threshold, but 150 per batch is under 2 beyond a p99 each
    slo = [Slo(metric="latency", percentile=99, threshold_ms=100)]
    assert stopping.settle(slo, lat, lat, 3, utilization=0.5) is None
    assert (
        stopping.look_arrivals(30_000, 3_000, [Slo(metric="latency", percentile=99.9, threshold_ms=1)]) == []
    )


def test_a_queue_drifting_past_the_threshold_is_not_passed() -> None:
    lat = np.full(8_000, 0.010)
    lat[-2_000:] = np.linspace(0.01, 0.09, 2_000)  # the latest quarter climbs to just under the threshold
    slo = [Slo(metric="latency", percentile=99, threshold_ms=100)]
    assert stopping.settle(slo, lat, lat, 3, utilization=0.5) is None  # its batches spread: not settled


def test_the_plan_states_the_rule_and_full_length_turns_it_off(tmp_path: Any) -> None:
    from planner.fleet.plan import Question, make_plan
    from tests.planner.fleet.test_sizing import book as sizing_book

    prof = tmp_path / "p.yaml"
    prof.write_text(
        "kind: assumed-profile\nname: p\ndevice: dev\npoints:\n"
        "  - {batch: 1, latency: {dist: exponential, mean_ms: 10}}\n"
    )
    book = sizing_book(dev=1.0)
    q = Question(scenario=scenario(50.0, 1000.0), runs=(), profiles=(str(prof),), sizing_requests=30_000)
    early = make_plan(q, book)
    assert early.simulations_stopped_early >= 1 and "stops early" in early.stopping_rule
    full = make_plan(Question(**{**q.__dict__, "early_stop": False}), book)
    assert (
        full.simulations_stopped_early == 0 and full.stopping_rule == "every simulation runs to full length"
    )
    assert [o.replicas for o in early.options] == [o.replicas for o in full.options]


def test_met_needs_two_looks_in_a_row_and_missed_stops_at_the_first() -> None:
    slo = [Slo(metric="latency", percentile=99, threshold_ms=100)]
    calm = np.full(8_000, 0.010)
    over = np.full(8_000, 0.5)
    seq = stopping.Sequential(slo, 3)
    assert seq.look(calm, calm, 0.5) is None  # one calm stretch is not enough ...
    assert seq.look(over[:10], over[:10], 0.5) is None  # ... an unjudged look breaks the run ...
    assert seq.look(calm, calm, 0.5) is None
    second = seq.look(calm, calm, 0.5)  # ... two in a row are
    assert second is not None and second.met
    missed = stopping.Sequential(slo, 3).look(over, over, 0.5)
    assert missed is not None and not missed.met


def test_a_simulation_the_batch_cap_never_bound_is_reused_for_larger_caps_with_identical_answers(
    tmp_path: Any, monkeypatch: Any
) -> None:
    import planner.fleet.sizing as sizing
    from planner.fleet.plan import Question, make_plan
    from planner.serving.simulation import SimReuse
    from tests.planner.fleet.test_sizing import book as sizing_book

    prof = tmp_path / "p.yaml"
    prof.write_text(
        "kind: assumed-profile\nname: p\ndevice: dev\npoints:\n"
        "  - {batch: 1, latency: {dist: exponential, mean_ms: 10}}\n"
        "  - {batch: 64, latency: {dist: exponential, mean_ms: 40}}\n"
    )
    q = Question(
        scenario=scenario(30.0, 200.0, n=8_000),
        runs=(),
        profiles=(str(prof),),
        max_batches=(1, 4, 16, 64),
        max_delays_ms=(0.0, 2.0),
        sizing_requests=8_000,
    )
    shared = make_plan(q, sizing_book(dev=1.0))
    monkeypatch.setattr(sizing, "_reuse", lambda task, lv, bound: SimReuse())  # every option on its own
    alone = make_plan(q, sizing_book(dev=1.0))
    assert shared.simulations_reused > 0 and alone.simulations_reused == 0
    for a, b in zip(shared.options, alone.options, strict=True):
        assert (a.replicas, a.latency_ms, a.utilization_peak, a.slo) == (
            b.replicas,
            b.latency_ms,
            b.utilization_peak,
            b.slo,
        )
