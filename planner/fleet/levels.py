"""The steady levels a scenario is sized at: its peak (Poisson/gamma at rate, an MMPP's busiest state), each
distinct hour of a diurnal day, or a trace replayed whole; growth applied; and SLO-scaled variants.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.traffic.scenario import Diurnal, Gamma, Mmpp, Poisson, Scenario, Slo, Trace

SIZING_REQUESTS = 30_000
HOURLY_MIN_REQUESTS = 2_000
OFF_PEAK_SHARE = 4  # hours below the peak simulate at most sizing_requests / this: they set device-hours only


@dataclass(frozen=True)
class Level:
    """One steady load to size for: the peak, or one diurnal hour's rate."""

    label: str
    hours: tuple[int, ...]  # diurnal hours at this rate; empty otherwise
    rate_rps: float  # mean offered rate of this level, growth applied (trace: its mean)
    scenario: Scenario | None  # None: no traffic at this level (zero replicas needed)


def _steady(sc: Scenario, arrivals: Poisson | Gamma, count: int, name: str) -> Scenario:
    return sc.model_copy(update={"arrivals": arrivals, "requests": count, "duration_s": None, "name": name})


def levels(sc: Scenario, sizing_requests: int = SIZING_REQUESTS) -> tuple[list[Level], str]:
    """The steady loads to size for and a sentence saying what was simulated."""
    a = sc.arrivals
    own = sc.requests
    if own is None and sc.duration_s is not None and (rate := sc.mean_rate_rps()) is not None:
        own = max(1, int(rate * sc.duration_s))
    count = min(own or sizing_requests, sizing_requests)
    if isinstance(a, Poisson | Gamma):
        rate = a.rate_rps * sc.growth
        what = f"{a.process} arrivals at {rate:.4g} req/s (growth x{sc.growth:g}), {count:,} arrivals"
        return [Level("peak", (), rate, _steady(sc, a, count, sc.name))], what
    if isinstance(a, Mmpp):
        top = max(a.states, key=lambda s: s.rate_rps)
        rate = top.rate_rps * sc.growth
        steady = Poisson(process="poisson", rate_rps=top.rate_rps)
        what = (
            f"the MMPP's busiest state ({top.rate_rps:g} req/s x growth {sc.growth:g} = {rate:.4g} req/s) held "
            f"steady as Poisson arrivals, {sizing_requests:,} arrivals: conservative when spikes are shorter "
            f"than the queues take to settle"
        )
        return [
            Level("peak", (), rate, _steady(sc, steady, sizing_requests, f"{sc.name} (busiest state)"))
        ], what
    if isinstance(a, Diurnal):
        by_mult: dict[float, list[int]] = {}
        for h, m in enumerate(a.hourly_multipliers):
            by_mult.setdefault(m, []).append(h)
        out: list[Level] = []
        peak_mult = max(by_mult)
        for m, hours in sorted(by_mult.items(), reverse=True):
            rate = a.peak_rate_rps * m * sc.growth
            if m == 0:
                out.append(Level(f"hours {hours}", tuple(hours), 0.0, None))
                continue
            budget = sizing_requests if m == peak_mult else sizing_requests // OFF_PEAK_SHARE
            n = min(budget, max(HOURLY_MIN_REQUESTS, int(rate * 3600)))
            arr: Poisson | Gamma = (
                Gamma(process="gamma", rate_rps=a.peak_rate_rps * m, cv=a.cv)
                if a.within_hour == "gamma"
                else Poisson(process="poisson", rate_rps=a.peak_rate_rps * m)
            )
            out.append(
                Level(f"x{m:g}", tuple(hours), rate, _steady(sc, arr, n, f"{sc.name} (hour rate x{m:g})"))
            )
        what = (
            f"each distinct hourly rate as a steady {a.within_hour} process with an hour's arrivals (at least "
            f"{HOURLY_MIN_REQUESTS:,}; at most {sizing_requests:,} for the peak hour, "
            f"{sizing_requests // OFF_PEAK_SHARE:,} for the others); growth x{sc.growth:g}"
        )
        return out, what
    assert isinstance(a, Trace)
    return [
        Level("trace", (), float("nan"), sc)
    ], f"the trace replayed whole (speedup {a.speedup:g}, growth {sc.growth:g})"


# ------------------------------------------------------------------------------------------------ search


def with_slo_scale(sc: Scenario, factor: float) -> Scenario:
    """The scenario with every SLO threshold multiplied by factor (for sensitivity tables)."""
    slos = [
        Slo(metric=s.metric, percentile=s.percentile, threshold_ms=s.threshold_ms * factor) for s in sc.slo
    ]
    return sc.model_copy(update={"slo": slos})
