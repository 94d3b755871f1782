"""The replica search shared by batch and LLM sizing: the fewest replicas whose simulation meets every SLO.

Counts below `start` are known to fail without simulating (for batch, the analytic lower bound: anything less
is unstable). The search gallops upward (start, start+1, start+3, start+7, ...: from 1 that is doubling) until
a count passes, then bisects between the last failing and the first passing count, so every answer was
simulated as passing and the count below it as failing. It gives up at `cap`, or as soon as more replicas
stopped helping: two failing, stable counts in a row whose worst SLO ratio improved by less than NO_GAIN while
the replicas were mostly idle (utilization below NO_GAIN_UTILIZATION): then a lone request's service time is
already over the SLO, and no count will meet it. The caller's `verdict` caches its simulations by count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

NO_GAIN = 0.02
NO_GAIN_UTILIZATION = 0.5


@dataclass(frozen=True)
class Verdict:
    """One simulated count, as the search sees it."""

    ok: bool  # stable and every SLO met
    stable: bool
    worst: float  # the largest observed / threshold over the SLOs (inf when unstable or not observed)
    utilization: float | None  # busy share of the replicas' time; None: the simulator does not say


@dataclass(frozen=True)
class Found:
    """Where the search ended: the fewest passing count, or why there is none."""

    replicas: int | None  # the fewest simulated as passing; None: see capped / stuck_at
    last_failing: int  # the largest count known to fail (start - 1 when start itself passed)
    stuck_at: int | None = None  # the failing count at which more replicas stopped helping
    capped: bool = False  # every count up to the cap failed


def smallest_passing(verdict: Callable[[int], Verdict], start: int, cap: int) -> Found:
    """The fewest replicas in start..cap whose verdict is ok (see the module's docstring)."""
    start = max(1, start)
    lo = start - 1
    step, n = 1, start
    prev: Verdict | None = None
    while True:
        if n > cap:
            if lo >= cap:
                return Found(None, lo, capped=True)
            n = cap  # the gallop overshot: the cap itself is the last count worth trying
        v = verdict(n)
        if v.ok:
            break
        if (
            prev is not None
            and v.stable
            and prev.stable
            and v.worst > prev.worst * (1 - NO_GAIN)
            and (v.utilization is None or v.utilization < NO_GAIN_UTILIZATION)
        ):
            return Found(None, n, stuck_at=n)
        lo, prev = n, v
        n = start + 2 * step - 1
        step *= 2
    hi = n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if verdict(mid).ok:
            hi = mid
        else:
            lo = mid
    return Found(hi, lo)
