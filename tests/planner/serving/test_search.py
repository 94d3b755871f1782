"""The one replica search batch and LLM sizing share."""

from __future__ import annotations

import math

import pytest

from planner.serving.search import NO_GAIN, Verdict, smallest_passing


def counting(need: int, floor: float = 0.0) -> tuple[list[int], object]:
    """A fleet that meets its SLO from `need` replicas; the worst ratio falls as 1/n toward `floor`."""
    seen: list[int] = []

    def verdict(n: int) -> Verdict:
        seen.append(n)
        worst = max(floor, need / n) if n >= need else max(floor, 1.0 + (need - n) / need)
        return Verdict(ok=worst <= 1.0, stable=True, worst=worst, utilization=min(1.0, need / (2 * n)))

    return seen, verdict


@pytest.mark.parametrize("need", [1, 2, 3, 7, 8, 9, 100, 513])
@pytest.mark.parametrize("start", [1, 5])
def test_the_answer_is_the_fewest_passing_and_the_count_below_was_seen_failing(need: int, start: int) -> None:
    seen, verdict = counting(need)
    found = smallest_passing(verdict, start, 1000)  # type: ignore[arg-type]
    assert found.replicas == max(need, start)
    assert found.replicas in seen
    if found.replicas > start:
        assert found.last_failing == found.replicas - 1 and found.last_failing in seen
    assert len(seen) <= 2 * math.log2(max(need, 2)) + 3  # gallop then bisect, not a walk


def test_from_one_the_gallop_is_doubling() -> None:
    seen, verdict = counting(100)
    smallest_passing(verdict, 1, 1000)  # type: ignore[arg-type]
    assert seen[:8] == [1, 2, 4, 8, 16, 32, 64, 128]


def test_the_cap_ends_the_search_and_names_the_last_failing_count() -> None:
    seen, verdict = counting(100)
    found = smallest_passing(verdict, 1, 50)  # type: ignore[arg-type]
    assert found.replicas is None and found.capped and found.last_failing == 50 and max(seen) == 50


def test_more_replicas_that_stop_helping_end_the_search() -> None:
    """A lone request's service time is over the SLO: the worst ratio stays at 1.5 whatever the count."""
    seen, verdict = counting(4, floor=1.5)
    found = smallest_passing(verdict, 1, 1000)  # type: ignore[arg-type]
    assert found.replicas is None and not found.capped and found.stuck_at is not None
    assert max(seen) <= 16


def test_a_busy_fleet_is_not_called_stuck() -> None:
    """The same flat ratio at a high utilization (queueing, not service time): the search goes on to the cap."""

    def verdict(n: int) -> Verdict:
        return Verdict(ok=n >= 40, stable=True, worst=2.0 if n < 40 else 0.9, utilization=0.9)

    assert smallest_passing(verdict, 1, 1000).replicas == 40


def test_a_small_gain_is_judged_against_no_gain() -> None:
    ratios = {1: 3.0, 2: 3.0 * (1 - NO_GAIN / 2), 4: 0.5}
    stop = smallest_passing(lambda n: Verdict(ratios.get(n, 0.5) <= 1, True, ratios.get(n, 0.5), 0.1), 1, 10)
    assert stop.stuck_at == 2
    ratios[2] = 3.0 * (1 - NO_GAIN * 2)
    go = smallest_passing(lambda n: Verdict(ratios.get(n, 0.5) <= 1, True, ratios.get(n, 0.5), 0.1), 1, 10)
    assert go.replicas == 3


def test_a_gallop_past_the_cap_still_tries_the_cap() -> None:
    """Need 600 with a cap of 1000: the gallop jumps from 512 to 1024; 600 replicas are still found."""
    seen, verdict = counting(600)
    assert smallest_passing(verdict, 1, 1000).replicas == 600  # type: ignore[arg-type]
    assert 1000 in seen and 1024 not in seen
