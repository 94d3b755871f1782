"""An LLM day under a reactive autoscaler (planner/llm/autoscale.py) instead of an hourly schedule.

With `window_s` 3600 the day is one simulation, the pool's state carried from hour to hour. A day of tiny-chat is
millions of requests, so by default each hour is simulated for its first `window_s` seconds: LEAD_S
seconds of the hour before's rate on the replicas the last window kept, then the new rate, the autoscaler
reading and acting throughout. The window's device time is counted as it was held (starting, serving,
draining); the rest of the hour is counted at the mean of the window's second half, where the autoscaler has
answered the step (the window must outlast the cooldown and the start-up). The window's requests over a latency
SLO are counted; the hour's rest is taken to miss as the window's steady half does, which the benchmark
`benchmarks/autoscale_window_check.py` checks against a whole day simulated without windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from measure.run.types import ResultModel
from planner.llm.autoscale import AutoscalePolicy, Autoscaler
from planner.llm.day_windows import (
    LEAD_S,
    DayError,
    over_slo,
    poisson_segments,
    requests_at,
    steady,
    window_requests,
)
from planner.llm.engine import MAX_SIM_OUTPUT_TOKENS, EngineConfig, simulate
from planner.llm.simulation import llm_requests
from planner.llm.steps import StepModel
from planner.traffic.scenario import Scenario


class AutoHour(ResultModel):
    """One hour under the autoscaler."""

    hour: int
    rate_rps: float
    replicas_from: int  # serving or starting as the hour began (the whole day: draining ones too)
    replicas_to: (
        int  # serving or starting at the window's end (the whole day: at the hour's end, draining too)
    )
    mean_replicas: float  # holding a device, over the hour
    scale_ups: int  # decisions in the window
    scale_downs: int
    requests: int  # the window's, from the hour's first second
    missed: int  # of them over a latency SLO's threshold
    steady_missed_share: float  # of the window's second half: what the rest of the hour is taken to miss


class AutoscaledDay(ResultModel):
    """The day under one policy (one start-up time)."""

    policy: AutoscalePolicy
    window_s: float
    hours: list[AutoHour]
    replica_hours_per_day: float  # the autoscaled pool's
    spares: int = 0  # N+k: idle replicas beside the pool in every hour with traffic
    device_hours_per_day: float | None = None  # pool and spares, x devices per replica (once priced)
    usd_per_day: float | None = None
    requests_per_day: float  # the hours' rates x 3600
    missed_per_day: float  # the windows' misses, and the rest of each hour at its steady half's share
    scale_ups: int
    scale_downs: int

    @property
    def missed_share(self) -> float:
        """The day's requests over an SLO, as a share of its requests."""
        return self.missed_per_day / self.requests_per_day if self.requests_per_day else 0.0

    def priced(
        self, spares: int, devices_per_replica: int, usd_per_device_hour: float | None
    ) -> AutoscaledDay:
        """With N+k spares beside the pool in every hour with traffic, in device-hours and dollars."""
        busy = sum(1 for h in self.hours if h.rate_rps > 0)
        devices = (self.replica_hours_per_day + spares * busy) * devices_per_replica
        usd = None if usd_per_device_hour is None else devices * usd_per_device_hour
        return self.model_copy(update={"spares": spares, "device_hours_per_day": devices, "usd_per_day": usd})


WHOLE_DAY_REQUESTS = 300_000  # a day up to this many is simulated in one piece by default (~45 s on 2 cores)


def default_window(sc: Scenario, rates: list[float]) -> float:
    """3600 (the day in one piece) where it fits WHOLE_DAY_REQUESTS and the output-token budget, else 600 s."""
    requests = sum(rates) * 3600.0
    sample, _, _ = llm_requests(steady(sc, 1.0, 2000), 2000, seed=sc.seed)
    tokens = requests * float(sample.output.mean())
    return 3600.0 if requests <= WHOLE_DAY_REQUESTS and tokens <= 0.8 * MAX_SIM_OUTPUT_TOKENS else 600.0


def check_window(policy: AutoscalePolicy, window_s: float) -> None:
    """Refuse a window too short for the policy to settle in (its second half counts for the hour)."""
    need = max(policy.cooldown_s, policy.startup_s) + 2 * policy.interval_s
    if not need <= window_s <= 3600:
        raise DayError(
            f"a {window_s:g} s window cannot show the autoscaler settle: it must be {need:g}..3600 s "
            "(the cooldown or the start-up, and two readings)"
        )


@dataclass(frozen=True)
class AutoDayTask:
    """One autoscaled day, as a worker process gets it."""

    scenario: Scenario
    model: StepModel
    cfg: EngineConfig
    router: str
    rates: list[float]
    policy: AutoscalePolicy
    start: int
    window_s: float

    @property
    def option(self) -> AutoDayTask:  # what planner.workers names a task by on the progress bar
        return self

    @property
    def label(self) -> str:
        return f"the day autoscaled, start-up {self.policy.startup_s:g} s"


def run_autoscaled_day(task: AutoDayTask) -> AutoscaledDay:
    """autoscaled_day of one task (what a worker runs)."""
    t = task
    return autoscaled_day(t.scenario, t.model, t.cfg, t.router, t.rates, t.policy, t.start, t.window_s)


def autoscaled_day(
    sc: Scenario,
    model: StepModel,
    cfg: EngineConfig,
    router: str,
    rates: list[float],
    policy: AutoscalePolicy,
    start: int,
    window_s: float = 600.0,
) -> AutoscaledDay:
    """Simulate the autoscaler through every hour's first `window_s` s, from `start` replicas settled on the
    last hour (a first window at the last hour's rate settles them as the policy would)."""
    check_window(policy, window_s)
    if len(rates) != 24:
        raise DayError(f"a day has 24 hourly rates, got {len(rates)}")
    held = min(policy.max_replicas, max(policy.min_replicas, start))
    settle = min(window_s, max(600.0, max(policy.cooldown_s, policy.startup_s) + 2 * policy.interval_s))
    _, held = _window(sc, model, cfg, router, policy, rates[23], rates[23], held, settle, sc.seed + 2000)
    if window_s >= 3600:
        hours = _whole(sc, model, cfg, router, policy, rates, held)
    else:
        hours = []
        for h in range(24):
            row, held = _window(
                sc, model, cfg, router, policy, rates[h - 1], rates[h], held, window_s, sc.seed + 1000 + h
            )
            hours.append(row.model_copy(update={"hour": h}))
    missed = sum(
        r.missed + r.steady_missed_share * rate * (3600.0 - window_s)
        for r, rate in zip(hours, rates, strict=True)
    )
    return AutoscaledDay(
        policy=policy,
        window_s=window_s,
        hours=hours,
        replica_hours_per_day=sum(r.mean_replicas for r in hours),
        requests_per_day=sum(rates) * 3600.0,
        missed_per_day=missed,
        scale_ups=sum(r.scale_ups for r in hours),
        scale_downs=sum(r.scale_downs for r in hours),
    )


def _whole(
    sc: Scenario,
    model: StepModel,
    cfg: EngineConfig,
    router: str,
    policy: AutoscalePolicy,
    rates: list[float],
    held: int,
) -> list[AutoHour]:
    """The day as one simulation: no window, the pool's state carried through every hour."""
    hours = [(h * 3600.0, rate, 3600.0) for h, rate in enumerate(rates)]
    t = poisson_segments(np.random.default_rng(sc.seed + 3000), hours, over=1.2, extra=50)
    n = int(t.size)
    if n == 0:
        raise DayError("a day without a request")
    lengths = requests_at(sc, t, n / 86400.0, sc.seed + 3000)
    scaler = Autoscaler(policy, held, 86400.0)
    tr = simulate(lengths, model, cfg, held, router, sc.seed, autoscaler=scaler, record_itl=False)
    bad = over_slo(sc, t, tr, lengths.output)
    rows = []
    for h, rate in enumerate(rates):
        a, b = h * 3600.0, (h + 1) * 3600.0
        mine = (t >= a) & (t < b)
        ups, downs = scaler.decisions(a, b)
        n_h = int(mine.sum())
        rows.append(
            AutoHour(
                hour=h,
                rate_rps=rate,
                replicas_from=scaler.holding_at(a),
                replicas_to=scaler.holding_at(b),
                mean_replicas=scaler.device_s(a, b) / 3600.0,
                scale_ups=ups,
                scale_downs=downs,
                requests=n_h,
                missed=int(bad[mine].sum()),
                steady_missed_share=float(bad[mine].mean()) if n_h else 0.0,
            )
        )
    return rows


def _window(
    sc: Scenario,
    model: StepModel,
    cfg: EngineConfig,
    router: str,
    policy: AutoscalePolicy,
    before_rps: float,
    rate_rps: float,
    held: int,
    window_s: float,
    seed: int,
) -> tuple[AutoHour, int]:
    t, lengths = window_requests(sc, before_rps, rate_rps, window_s, seed)
    end = LEAD_S + window_s
    scaler = Autoscaler(policy, held, end)
    tr = simulate(lengths, model, cfg, held, router, sc.seed, autoscaler=scaler, record_itl=False)
    mine = t >= LEAD_S
    bad = over_slo(sc, t, tr, lengths.output)[mine]
    half = t[mine] >= LEAD_S + window_s / 2
    steady = float(bad[half].mean()) if half.any() else 0.0
    window_hours = scaler.device_s(LEAD_S, end) / 3600.0
    rest = scaler.mean_held(LEAD_S + window_s / 2, end) * (3600.0 - window_s) / 3600.0
    kept = scaler.kept()
    ups, downs = scaler.decisions(LEAD_S, end)
    row = AutoHour(
        hour=0,
        rate_rps=rate_rps,
        replicas_from=held,
        replicas_to=kept,
        mean_replicas=window_hours + rest,
        scale_ups=ups,
        scale_downs=downs,
        requests=int(mine.sum()),
        missed=int(bad.sum()),
        steady_missed_share=steady,
    )
    return row, kept
