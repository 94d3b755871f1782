"""The SimPy-free event loops against the SimPy engine they replace for static routers: the same batches, the
same times bit for bit, the same pauses at looks; and the vectorised batch statistics and the plain sampler
against the per-batch code they replace."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.serving.batch_stats import batch_means, batch_percentiles
from planner.serving.profiles import AssumedProfile
from planner.serving.service import BatchSampler, ServiceModel
from planner.serving.service_from import from_profile, from_run
from planner.serving.sim import BatchPolicy, SimOutput, simulate
from tests.conftest import make_run, ok_point


def _run(
    engine: str,
    seed: int,
    arrivals: np.ndarray,
    items: np.ndarray,
    seq: np.ndarray | None,
    replicas: int,
    router: str,
    policy: BatchPolicy,
    looks: list[int],
    stop_after: int,
) -> tuple[SimOutput, list[tuple[int, float]]]:
    draws = np.random.default_rng(seed).exponential(0.004, 4096).tolist()
    it = iter(draws)

    def draw(b: int, longest: int | None, idle: float) -> float:
        # the idle time counts: the loops must hand each batch to the replica SimPy hands it to; the longest
        # sequence too: the loops take it from their own copy of the lengths
        return next(it) * (1 + 0.3 * b) + (0.002 if idle > 0.01 else 0.0) + (longest or 0) * 1e-5

    seen: list[tuple[int, float]] = []

    def stop(prefix: int, _start: np.ndarray, _done: np.ndarray, busy: float) -> bool:
        seen.append((prefix, busy))
        return len(seen) >= stop_after

    out = simulate(
        arrivals,
        items,
        seq,
        replicas,
        router,
        policy,
        draw,
        np.random.default_rng(seed + 1),  # type: ignore[arg-type]
        lambda b: 100.0 + b,
        looks=looks,
        stop=stop,
        engine=engine,  # type: ignore[arg-type]
    )
    return out, seen


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 250),
    rate=st.sampled_from([50.0, 400.0, 3000.0]),
    replicas=st.integers(1, 5),
    router=st.sampled_from(["central", "rr", "random"]),
    max_batch=st.integers(1, 8),
    max_delay_ms=st.sampled_from([0.0, 1.0, 4.0, 15.0]),
    capacity=st.sampled_from([None, 1, 3, 6]),
    multi_item=st.booleans(),
    ties=st.booleans(),
    lengths=st.booleans(),
    stop_after=st.integers(1, 4),
    seed=st.integers(0, 10_000),
)
def test_the_event_loops_give_the_simpy_engines_results_bit_for_bit(
    n: int,
    rate: float,
    replicas: int,
    router: str,
    max_batch: int,
    max_delay_ms: float,
    capacity: int | None,
    multi_item: bool,
    ties: bool,
    lengths: bool,
    stop_after: int,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    if ties:  # arrivals on a millisecond grid: timers land exactly on arrivals and on each other
        arrivals = np.round(arrivals, 3)
    items = rng.integers(1, max_batch + 1, n) if multi_item else np.ones(n, dtype=np.int64)
    policy = BatchPolicy(max_batch, max_delay_ms / 1000, capacity)
    seq = rng.integers(1, 512, n) if lengths else None
    looks = sorted(set(rng.integers(1, n + 1, 3).tolist()))
    a, seen_a = _run("simpy", seed, arrivals, items, seq, replicas, router, policy, looks, stop_after)
    b, seen_b = _run("loop", seed, arrivals, items, seq, replicas, router, policy, looks, stop_after)
    assert seen_a == seen_b
    np.testing.assert_array_equal(a.start_s, b.start_s)
    np.testing.assert_array_equal(a.done_s, b.done_s)
    assert a.rejected.tolist() == b.rejected.tolist() and a.batch_sizes == b.batch_sizes
    assert a.busy_s.tolist() == b.busy_s.tolist() and a.busy_energy_j.tolist() == b.busy_energy_j.tolist()
    assert (a.end_s, a.simulated) == (b.end_s, b.simulated)


def test_the_batch_statistics_equal_one_call_per_array_split_part() -> None:
    rng = np.random.default_rng(0)
    qs = [50.0, 90.0, 99.0, 99.9]
    for n in (20, 21, 39, 400, 1234, 30_001):
        x = rng.lognormal(-4, 1, n)
        parts = np.array_split(x, 20)
        want = np.array([np.percentile(p, qs, method="linear") for p in parts])
        np.testing.assert_array_equal(batch_percentiles(x, 20, qs), want)
        np.testing.assert_array_equal(batch_means(x, 20), np.array([p.mean() for p in parts]))


def _bucketed_model() -> ServiceModel:
    points = [
        {
            "batch": b,
            "seq_len": q,
            "latency": {"dist": "lognormal", "median_ms": 2 + b * q / 64, "sigma": 0.2},
        }
        for b in (1, 4, 16)
        for q in (64, 256)
    ]
    return from_profile(
        AssumedProfile.model_validate(
            {"kind": "assumed-profile", "name": "t", "device": "t", "points": points}
        )
    )


@pytest.mark.parametrize("bucketed", [False, True], ids=["one table", "sequence buckets"])
def test_the_unpaced_samplers_draw_what_the_general_one_draws(bucketed: bool) -> None:
    model = (
        _bucketed_model()
        if bucketed
        else from_run(
            make_run([ok_point("fp32", 1, 2.0), ok_point("fp32", 4, 5.0), ok_point("fp32", 16, 9.0)]), "fp32"
        )
    )
    fast, general = (
        BatchSampler(model, np.random.default_rng(3)),
        BatchSampler(model, np.random.default_rng(3)),
    )
    assert fast.draw != general.__class__.draw  # a fast path is the one in use
    rng = np.random.default_rng(4)
    sizes = rng.integers(1, 17, 6000).tolist()
    # lengths inside, between and beyond the buckets, and none
    lengths = [None if x < 40 else int(x) for x in rng.integers(0, 400, 6000)] if bucketed else [None] * 6000
    got = [fast.draw(b, q, 0.0) for b, q in zip(sizes, lengths, strict=True)]
    want = [BatchSampler.draw(general, b, q, 0.0) for b, q in zip(sizes, lengths, strict=True)]
    assert got == want and fast.seq_over == general.seq_over
    assert fast.seq_over > 0 or not bucketed
