"""An LLM fleet over a diurnal day: sized hour by hour, scaled with demand, with the engine's start-up time
counted through every ramp.

Each distinct hourly rate is sized like a steady scenario (Poisson at that rate: the fewest replicas meeting
every SLO). Two policies of the same hourly schedule are costed: reactive (at an hour whose sized count is
higher, the new replicas start at the hour's first second and serve after the start-up time: model load, graph
capture) and pre-warmed (they start that long before the hour, so they serve from its first second). At an hour
whose count is lower, the surplus is kept for the cooldown. Device-hours count what runs: each hour's replicas
with the redundancy policy's spares, cooling ones while they cool, and, pre-warmed, starting ones while they
start ahead of their hour. A reactive start-up is inside its hour: it costs SLO misses, not device-hours.

Every up-ramp is simulated: a lead-in at the hour before's rate on its replicas, then the new rate with the new
replicas joining after the start-up time. The requests of the new hour's first `ramp_s` seconds that miss a
latency SLO (TTFT, TPOT or E2E over its threshold) are counted beside the same window with no start-up delay;
a percentile SLO is a share, so the misses say how far above its 1% (p99) the ramp's requests went.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from pydantic import Field

from measure.run.types import ResultModel
from planner.fleet.redundancy import Redundancy
from planner.llm.autoscale import AutoscalePolicy
from planner.llm.day_autoscaled import (
    AutoDayTask,
    AutoscaledDay,
    check_window,
    default_window,
    run_autoscaled_day,
)
from planner.llm.day_windows import LEAD_S, DayError, over_slo, steady, window_requests
from planner.llm.engine import EngineConfig, simulate
from planner.llm.sizing import ReplicaCounts, Source
from planner.llm.steps import StepModel
from planner.serving.search import smallest_passing
from planner.traffic.scenario import Diurnal, Scenario
from planner.workers import in_workers

DAYS_PER_MONTH = 30.4  # what a day's cost is multiplied by, in the CLI's table and the app's


class HourRow(ResultModel):
    """One hour of the day: its rate, the replicas sized for it and those running with the spares."""

    hour: int
    rate_rps: float
    replicas: int  # sized: the fewest meeting every SLO at this rate
    running: int  # with the redundancy policy


class RampRow(ResultModel):
    """One up-ramp simulated at a start-up time."""

    into_hour: int
    replicas_before: int
    replicas_after: int
    startup_s: float
    requests: int  # of the new hour's first ramp_s seconds
    missed: int  # of them over a latency SLO's threshold
    missed_share: float


class LlmDay(ResultModel):
    """The day: hours, device-hours and cost by start-up time, and every up-ramp's SLO misses."""

    scenario: str
    slos: list[str]
    router: str
    startup_s: list[float]
    cooldown_s: float
    ramp_s: float
    hours: list[HourRow]
    device_hours_per_day: dict[str, float]  # reactive, by start-up time (s, as text): running and cooling
    usd_per_day: dict[str, float | None]
    prewarmed_device_hours_per_day: dict[str, float]  # and the replicas started ahead of their hour
    prewarmed_usd_per_day: dict[str, float | None]
    ramps: list[RampRow]
    notes: list[str]
    autoscaled: list[AutoscaledDay] = Field(
        default_factory=list
    )  # under a reactive autoscaler, by start-up time (with `autoscale`)

    def ramp_misses(self, startup: str) -> tuple[int, int, int]:
        """At a start-up time (s, as text): the up-ramps' requests over an SLO, their requests, the ramps."""
        ramps = [x for x in self.ramps if f"{x.startup_s:g}" == startup]
        return sum(x.missed for x in ramps), sum(x.requests for x in ramps), len(ramps)


def plan_day(
    sc: Scenario,
    run: Source,
    model: StepModel,
    cfg: EngineConfig,
    router: str,
    startups_s: tuple[float, ...],
    cooldown_s: float = 300.0,
    redundancy: Redundancy = Redundancy(),
    usd_per_device_hour: float | None = None,
    devices_per_replica: int = 1,
    requests: int = 1500,
    ramp_s: float = 300.0,
    max_replicas: int = 256,
    autoscale: AutoscalePolicy | None = None,
    window_s: float | None = None,
    target_from_peak: bool = False,
    jobs: int = 1,
) -> LlmDay:
    """Size every hour, then simulate every up-ramp at each start-up time; with `autoscale` (its start-up
    time replaced by each of `startups_s`), the day under that autoscaler too, in `window_s` windows an hour
    (default: the whole day in one piece where it fits, else 600 s). `target_from_peak`: a concurrency target
    set to the requests in flight per replica that the peak hour's sized count holds (Little's law). The
    autoscaled days (one per start-up time) run in `jobs` processes."""
    a = sc.arrivals
    if not isinstance(a, Diurnal):
        raise DayError(f"scenario {sc.name}: a day is planned from diurnal arrivals (hourly_multipliers)")
    if not sc.slo:
        raise DayError(f"scenario {sc.name} has no SLO to size each hour for")
    if not startups_s or any(not 0 <= s <= 3600 for s in startups_s):
        raise DayError("start-up times must be in 0..3600 s")
    if not 0 <= cooldown_s <= 3600 or not 30 <= ramp_s <= 3600:
        raise DayError("cooldown in 0..3600 s and ramp window in 30..3600 s")
    rates = [a.peak_rate_rps * m * sc.growth for m in a.hourly_multipliers]
    window = 3600.0  # the autoscaled day's, when there is one
    if autoscale is not None:
        window = window_s if window_s is not None else default_window(sc, rates)
        for s in startups_s:
            check_window(autoscale.model_copy(update={"startup_s": s}), window)
    sized: dict[float, int] = {}
    in_flight = 0.0  # per replica, at the peak hour's sized count
    for rate in sorted(set(rates), reverse=True):
        if rate <= 0:
            sized[rate] = 0
            continue
        counts = ReplicaCounts(steady(sc, rate, requests), run, model, cfg, requests, router)
        found = smallest_passing(counts.verdict, 1, max_replicas)
        if found.replicas is None:
            raise DayError(f"{rate:.4g} req/s: no count up to {max_replicas} replicas meets the SLOs")
        sized[rate] = found.replicas
        e2e = counts(found.replicas).e2e_ms
        if not in_flight and e2e is not None:
            in_flight = rate * e2e.mean / 1000.0 / found.replicas
    hours = [
        HourRow(hour=h, rate_rps=r, replicas=sized[r], running=redundancy.apply(sized[r]))
        for h, r in enumerate(rates)
    ]
    notes = [
        f"each hour sized on {requests:,} Poisson requests at its rate; a day is 24 hours of the multipliers",
        f"up-ramps: {LEAD_S:g} s of the hour before's rate on its replicas, then {ramp_s:g} s of the new hour's "
        "with the new replicas serving after the start-up time",
    ]
    device_hours: dict[str, float] = {}
    usd: dict[str, float | None] = {}
    warm_hours: dict[str, float] = {}
    warm_usd: dict[str, float | None] = {}
    ramps: list[RampRow] = []

    def cost(replica_hours: float) -> float | None:
        return (
            replica_hours * devices_per_replica * usd_per_device_hour
            if usd_per_device_hour is not None
            else None
        )

    base = 0.0
    up = 0  # replicas started over the day
    for h in range(24):
        now, nxt = hours[h].running, hours[(h + 1) % 24].running
        base += now  # the hour's running replicas
        if nxt < now:
            base += (now - nxt) * cooldown_s / 3600.0  # kept for the cooldown
        up += max(0, nxt - now)
    for startup in startups_s:
        key = f"{startup:g}"
        warm = base + up * startup / 3600.0
        device_hours[key], usd[key] = base * devices_per_replica, cost(base)
        warm_hours[key], warm_usd[key] = warm * devices_per_replica, cost(warm)
        for h in range(24):
            before, after = hours[h], hours[(h + 1) % 24]
            if after.running > before.running and after.rate_rps > 0:
                ramps.append(_ramp(sc, model, cfg, router, before, after, startup, ramp_s))
    autoscaled = []
    if autoscale is not None:
        notes.append(
            "autoscaled: the day simulated in one piece, the pool carried from hour to hour; N+k spares added"
            if window >= 3600
            else f"autoscaled: each hour simulated for its first {window:g} s after {LEAD_S:g} s of the hour "
            "before, the rest of the hour counted at the window's second half (replicas and SLO misses); N+k "
            "spares added. Where a noisy metric makes the pool creep for hours, windows fall short of the whole "
            "day (docs/llm-serving.md)"
        )
        if target_from_peak:
            if autoscale.metric != "concurrency" or in_flight <= 0:
                raise DayError("an auto target is a concurrency one, set from a peak hour with traffic")
            autoscale = autoscale.model_copy(update={"target": in_flight})
            notes.append(
                f"autoscaler target: {in_flight:.3g} requests in flight per replica, what the peak hour's sized "
                f"{sized[max(rates)]} replica(s) hold (Little's law: rate x mean E2E / replicas)"
            )
        policies = [autoscale.model_copy(update={"startup_s": x}) for x in startups_s]
        start = hours[-1].replicas
        tasks = [AutoDayTask(sc, model, cfg, router, rates, p, start, window) for p in policies]
        for day in in_workers(run_autoscaled_day, tasks, jobs, None):
            autoscaled.append(day.priced(redundancy.spares, devices_per_replica, usd_per_device_hour))
    return LlmDay(
        autoscaled=autoscaled,
        scenario=sc.name,
        slos=[f"{s.metric} p{s.percentile:g} <= {s.threshold_ms:g} ms" for s in sc.slo],
        router=router,
        startup_s=list(startups_s),
        cooldown_s=cooldown_s,
        ramp_s=ramp_s,
        hours=hours,
        device_hours_per_day=device_hours,
        usd_per_day=usd,
        prewarmed_device_hours_per_day=warm_hours,
        prewarmed_usd_per_day=warm_usd,
        ramps=ramps,
        notes=notes,
    )


def _ramp(
    sc: Scenario,
    model: StepModel,
    cfg: EngineConfig,
    router: str,
    before: HourRow,
    after: HourRow,
    startup: float,
    ramp_s: float,
) -> RampRow:
    t, lengths = window_requests(sc, before.rate_rps, after.rate_rps, ramp_s, sc.seed + after.hour)
    if t.size == 0:
        raise DayError(f"hour {after.hour}: no request in the ramp window")
    ready = LEAD_S + startup
    joins: tuple[tuple[float, int], ...] = ()
    if before.running == 0:  # from nothing: requests wait at the router until the first replicas are up
        sent, start = np.maximum(t, ready), after.running
    else:
        sent, start = t, before.running
        joins = ((ready, after.running - start),)
    tr = simulate(replace(lengths, arrival_s=sent), model, cfg, start, router, sc.seed, scale_ups=joins)
    mine = t >= LEAD_S
    bad = over_slo(sc, t, tr, lengths.output)[mine]
    n = int(mine.sum())
    return RampRow(
        into_hour=after.hour,
        replicas_before=before.running,
        replicas_after=after.running,
        startup_s=startup,
        requests=n,
        missed=int(bad.sum()),
        missed_share=float(bad.mean()) if n else 0.0,
    )
