"""Fuzz (bounded, in CI): mutated shipped runs and scenarios are either rejected with the format's error or give
a result, each within a time cap, and the whole fuzz within a memory cap. benchmarks/fuzz_inputs.py runs the
same engine for longer."""

from __future__ import annotations

import resource
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import CHECKS

EDIT = st.tuples(st.integers(0, 10**6), st.integers(0, 2), st.integers(0, 10**3))
SECONDS_PER_EXAMPLE = 10.0
MEMORY_GROWTH_KIB = 1_500_000  # peak RSS may grow this much over the whole fuzz


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(CHECKS))
def test_a_mutated_file_is_rejected_cleanly_or_gives_a_result(kind: str) -> None:
    load, check = CHECKS[kind]
    seeds = load()
    outcomes: dict[str, int] = {}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(
        max_examples=120,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(seed=st.integers(0, len(seeds) - 1), edits=st.lists(EDIT, min_size=1, max_size=4))
    def one(seed: int, edits: list[tuple[int, int, int]]) -> None:
        from tests.fuzzing import mutate

        t0 = time.perf_counter()
        outcome = check(mutate(seeds[seed], edits))  # any exception but the format's own fails the test
        assert time.perf_counter() - t0 < SECONDS_PER_EXAMPLE, (edits, outcome)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    one()
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < MEMORY_GROWTH_KIB
    # the fuzz exercised both paths: some mutations are refused, and the unmutated kinds still work
    assert outcomes.get("rejected", 0) > 0, outcomes
    assert all(check(s) == "accepted" for s in seeds)
