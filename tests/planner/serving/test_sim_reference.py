"""The event-skipping simulator against a plain event-by-event reference of the same batching rule.

The reference re-evaluates the whole system at every arrival, completion and deadline, which is slow but
obviously right; hypothesis draws small random systems and both must give the same batch start times and
the same rejections.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.serving.sim import BatchPolicy, simulate


def service_s(b: int, seq: int | None, _idle: float = 0.0) -> float:
    return 0.003 + 0.002 * b  # deterministic, so both simulators see the same service times


def reference(
    arrivals: np.ndarray, items: np.ndarray, replicas: int, router: str, policy: BatchPolicy
) -> tuple[np.ndarray, np.ndarray]:
    n = arrivals.size
    start = np.full(n, np.nan)
    rejected = np.zeros(n, dtype=bool)
    nq = 1 if router == "central" else replicas
    queues: list[list[int]] = [[] for _ in range(nq)]
    busy_until = [0.0] * replicas
    serving = [0] * replicas
    completions: list[float] = []
    i, t = 0, 0.0
    while True:
        # admit everything that has arrived by t, in order
        while i < n and arrivals[i] <= t + 1e-12:
            if router == "jsq":
                out = [
                    len(queues[r]) + (serving[r] if busy_until[r] > t + 1e-12 else 0) for r in range(replicas)
                ]
                q = queues[out.index(min(out))]
            else:
                q = queues[i % nq]
            if policy.capacity is not None and len(q) >= policy.capacity:
                rejected[i] = True
            else:
                q.append(i)
            i += 1
        launched = True
        while launched:
            launched = False
            for r in range(replicas):
                q = queues[r % nq]
                if busy_until[r] > t + 1e-12 or not q:
                    continue
                total = int(items[q].sum())
                if total >= policy.max_batch or t + 1e-12 >= arrivals[q[0]] + policy.max_delay_s:
                    take, acc = 0, 0
                    while take < len(q) and acc + items[q[take]] <= policy.max_batch:
                        acc += int(items[q[take]])
                        take += 1
                    for rid in q[:take]:
                        start[rid] = t
                    del q[:take]
                    busy_until[r] = t + service_s(acc, None)
                    serving[r] = take
                    heapq.heappush(completions, busy_until[r])
                    launched = True
        candidates = []
        if i < n:
            candidates.append(arrivals[i])
        candidates += [c for c in completions if c > t + 1e-12]
        for r in range(replicas):
            q = queues[r % nq]
            if q and busy_until[r] <= t + 1e-12:
                candidates.append(arrivals[q[0]] + policy.max_delay_s)
        candidates = [c for c in candidates if c > t + 1e-12]
        if not candidates:
            return start, rejected
        t = min(candidates)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 60),
    rate=st.floats(20, 600),
    replicas=st.integers(1, 3),
    router=st.sampled_from(["central", "rr", "jsq"]),
    max_batch=st.integers(1, 4),
    max_delay_ms=st.sampled_from([0.0, 1.0, 4.0, 15.0]),
    capacity=st.sampled_from([None, 1, 3, 6]),
    multi_item=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_the_simulator_matches_the_event_by_event_reference(
    n: int,
    rate: float,
    replicas: int,
    router: str,
    max_batch: int,
    max_delay_ms: float,
    capacity: int | None,
    multi_item: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    items = rng.integers(1, max_batch + 1, n) if multi_item else np.ones(n, dtype=np.int64)
    policy = BatchPolicy(max_batch, max_delay_ms / 1000, capacity)
    out = simulate(arrivals, items, None, replicas, router, policy, service_s, rng)  # type: ignore[arg-type]
    ref_start, ref_rej = reference(arrivals, items, replicas, router, policy)
    assert out.rejected.tolist() == ref_rej.tolist()
    np.testing.assert_allclose(out.start_s, ref_start, rtol=0, atol=1e-9)


def test_jsq_sends_each_arrival_to_the_replica_with_the_fewest_outstanding() -> None:
    # three arrivals 1 ms apart, long service: each goes to an empty replica, the fourth to the first free one
    a = np.array([0.0, 0.001, 0.002, 0.003])
    out = simulate(
        a,
        np.ones(4, dtype=np.int64),
        None,
        3,
        "jsq",
        BatchPolicy(1, 0),
        lambda b, s, _idle: 0.010,
        np.random.default_rng(0),
    )
    assert out.start_s.tolist() == pytest.approx([0.0, 0.001, 0.002, 0.010])
    assert out.busy_s.tolist() == pytest.approx([0.020, 0.010, 0.010])
