"""One option sized, priced and ranked within the options it may be compared with, and the answer sentence."""

from __future__ import annotations

import math
from typing import Any, Literal

from measure.run.types import ResultModel as _Out
from planner.fleet.cost import Cost, Load, price_fleet
from planner.fleet.prices import DevicePrice, PriceBook, Pricing
from planner.fleet.redundancy import Redundancy
from planner.fleet.searcher import Below
from planner.fleet.sizing import SizedOption
from planner.serving.simulation import Summary
from planner.traffic.scenario import Scenario

RankBy = Literal["monthly_cost", "cost_per_1k", "tokens_per_joule"]
RANK_BY: tuple[str, ...] = ("monthly_cost", "cost_per_1k", "tokens_per_joule")


class HourCount(_Out):
    """Diurnal: replicas needed in one hour of the day."""

    hour: int
    rate_rps: float
    replicas: int | None
    replicas_deployed: int | None


class PlannedOption(_Out):
    """One option, sized, priced and ranked; every figure says where it comes from."""

    key: str
    label: str
    source: Literal["measured", "assumed"]
    evidence_ids: list[str]
    representative: str
    device: str
    price_entry: str | None  # None: not priced (see not_priced): sized and shown, never costed
    not_priced: str | None = None  # why no price applies, e.g. "no price for device 'AMD EPYC ...'"
    group: str
    precision: str | None
    max_batch: int
    max_delay_ms: float
    router: str
    unit: str
    meets_slo: bool
    reason: str | None
    replicas: int | None  # sized: the fewest simulated as meeting every SLO at peak
    replicas_optimistic: int | None
    replicas_deployed: int | None  # after the redundancy policy
    redundancy: str
    below: Below | None
    latency_ms: Summary | None  # at the sized count, peak load
    latency_ci95_halfwidth_ms: Summary | None
    slo: list[dict[str, Any]]
    utilization_peak: float | None
    utilization_mean: float | None
    hourly: list[HourCount]
    device_hours_per_day_autoscaled: float | None
    cost: Cost | None  # always-on fleet of replicas_deployed
    cost_autoscaled: Cost | None  # diurnal: devices follow the hourly counts (on-demand pricing)
    monthly_cost_usd: float | None
    cost_per_1k_requests_usd: float | None
    cost_per_1m_tokens_usd: float | None
    units_per_joule: float | None
    quality: dict[str, Any] | None  # numeric-quality proxy of this precision vs fp32, where measured
    rank: int | None  # within the group, among options that meet the SLOs
    simulations: int
    warnings: list[str]


class Group(_Out):
    """Options that may be compared with each other."""

    label: str
    options: list[str]  # keys, in rank order
    source: Literal["measured", "assumed"]


def _power(deployed: int, idle_w: float | None, rate: float, marginal: float | None) -> float | None:
    if idle_w is None or marginal is None:
        return None
    return deployed * idle_w + rate * marginal


def plan_option(
    sc: Scenario,
    opt: SizedOption,
    entry: DevicePrice | str,
    book: PriceBook,
    pricing: Pricing,
    red: Redundancy,
) -> PlannedOption:
    """Price one sized option and derive its per-request, per-unit and per-joule figures; `entry` is the
    price-book entry, or why there is none (then the option is sized and shown, with no cost figures)."""
    price = entry.price(pricing) if isinstance(entry, DevicePrice) else None
    peak = opt.levels[0] if opt.levels else None
    ok = opt.error is None and bool(opt.levels) and all(lv.replicas is not None for lv in opt.levels)
    reason = opt.error or next((lv.reason for lv in opt.levels if lv.replicas is None), None)
    n = peak.replicas if peak is not None else None
    deployed = red.apply(n) if n is not None else None
    mean_rate = sc.mean_rate_rps() or (peak.rate_rps if peak else 0.0)
    peak_rate = peak.rate_rps if peak else 0.0
    load = Load(mean_rate, peak.units_per_request if peak else 0.0, opt.unit)
    hourly: list[HourCount] = []
    cost = cost_auto = None
    hours_day = None
    if ok and peak is not None and deployed is not None and isinstance(entry, DevicePrice) and price:
        power = _power(deployed, opt.idle_power_w, mean_rate, peak.marginal_energy_j_per_request)
        cost = price_fleet(entry.device, pricing, price, book.electricity, deployed * 730.0, power, load)
        if any(lv.hours for lv in opt.levels):
            by_hour = {h: lv for lv in opt.levels for h in lv.hours}
            for h in range(24):
                lv = by_hour[h]
                dep = red.apply(lv.replicas) if lv.replicas is not None else None
                hourly.append(
                    HourCount(hour=h, rate_rps=lv.rate_rps, replicas=lv.replicas, replicas_deployed=dep)
                )
            hours_day = float(sum(c.replicas_deployed or 0 for c in hourly))
            powers = [
                _power(
                    c.replicas_deployed or 0,
                    opt.idle_power_w,
                    c.rate_rps,
                    by_hour[c.hour].marginal_energy_j_per_request,
                )
                for c in hourly
            ]
            auto_power = None if any(p is None for p in powers) else sum(p or 0.0 for p in powers) / 24
            cost_auto = price_fleet(
                entry.device, pricing, price, book.electricity, hours_day * 730.0 / 24, auto_power, load
            )
    util_peak = None
    if peak is not None and peak.utilization is not None and n and deployed:
        util_peak = peak.utilization * n / deployed
    return PlannedOption(
        key=opt.key,
        label=opt.label,
        source=opt.source,
        evidence_ids=opt.evidence_ids,
        representative=opt.representative,
        device=opt.device,
        price_entry=entry.device if isinstance(entry, DevicePrice) else None,
        not_priced=None if isinstance(entry, DevicePrice) else entry,
        group=opt.group,
        precision=opt.precision,
        max_batch=opt.max_batch,
        max_delay_ms=opt.max_delay_ms,
        router=opt.router,
        unit=opt.unit,
        meets_slo=ok,
        reason=None if ok else reason,
        replicas=n if ok else None,
        replicas_optimistic=peak.optimistic_replicas if ok and peak else None,
        replicas_deployed=deployed if ok else None,
        redundancy=red.label(),
        below=peak.below if peak else None,
        latency_ms=peak.latency_ms if ok and peak else None,
        latency_ci95_halfwidth_ms=peak.latency_ci95_halfwidth_ms if ok and peak else None,
        slo=peak.slo if ok and peak else [],
        utilization_peak=util_peak,
        utilization_mean=util_peak * mean_rate / peak_rate
        if util_peak is not None and peak_rate > 0
        else None,
        hourly=hourly,
        device_hours_per_day_autoscaled=hours_day,
        cost=cost,
        cost_autoscaled=cost_auto,
        monthly_cost_usd=cost.monthly_cost_usd if cost else None,
        cost_per_1k_requests_usd=cost.cost_per_1k_requests_usd if cost else None,
        cost_per_1m_tokens_usd=cost.cost_per_1m_tokens_usd if cost else None,
        units_per_joule=cost.units_per_joule if cost else None,
        quality=opt.quality,
        rank=None,
        simulations=opt.simulations,
        warnings=opt.warnings,
    )


def _metric(o: PlannedOption, rank_by: RankBy) -> float:
    """Smaller is better; a missing figure sorts last."""
    if rank_by == "monthly_cost":
        v = o.monthly_cost_usd
    elif rank_by == "cost_per_1k":
        v = o.cost_per_1k_requests_usd
    else:
        v = -o.units_per_joule if o.units_per_joule is not None else None
    return math.inf if v is None else v


def rank(options: list[PlannedOption], rank_by: RankBy) -> tuple[list[PlannedOption], list[Group]]:
    """Options ordered group by group, SLO-meeting ones first by the metric, with ranks set."""
    groups: dict[str, list[PlannedOption]] = {}
    for o in options:
        groups.setdefault(o.group, []).append(o)
    ordered: list[PlannedOption] = []
    out_groups: list[Group] = []
    for label, members in sorted(groups.items(), key=lambda kv: (kv[1][0].source == "assumed", kv[0])):
        # ties (same count, same price) go to the lower p99: the same money buys more latency margin
        passing = sorted(
            (o for o in members if o.meets_slo and o.not_priced is None),
            key=lambda o: (_metric(o, rank_by), o.latency_ms.p99 if o.latency_ms else math.inf, o.label),
        )
        # unpriced options are listed after the ranked ones: sized, but not comparable on money
        failing = sorted(
            (o for o in members if not o.meets_slo or o.not_priced is not None),
            key=lambda o: (not o.meets_slo, o.label),
        )
        ranked = [o.model_copy(update={"rank": i + 1}) for i, o in enumerate(passing)] + failing
        ordered.extend(ranked)
        out_groups.append(Group(label=label, options=[o.key for o in ranked], source=members[0].source))
    return ordered, out_groups


def answer_sentence(options: list[PlannedOption], rank_by: RankBy) -> str:
    """One plain sentence per group: the best option, or why none meets the SLOs."""
    lines = []
    for group in dict.fromkeys(o.group for o in options):
        members = [o for o in options if o.group == group]
        best = next((o for o in members if o.rank == 1), None)
        tag = "ASSUMED " if members[0].source == "assumed" else ""
        unpriced = [o for o in members if o.meets_slo and o.not_priced is not None]
        if best is None and unpriced:
            o = min(unpriced, key=lambda o: (o.replicas_deployed or 0, o.label))
            lines.append(
                f"{tag}{group}: no priced option meets every SLO; {o.label} meets them with "
                f"{o.replicas_deployed} replica(s), {o.not_priced}"
            )
            continue
        if best is None:
            why = next((o.reason for o in members if o.reason), "no option met the SLOs")
            lines.append(f"{tag}{group}: no option meets every SLO ({why})")
            continue
        money = (
            f"${best.monthly_cost_usd:,.0f}/month" if best.monthly_cost_usd is not None else "cost unknown"
        )
        lines.append(
            f"{tag}{group}: best by {rank_by} is {best.label}: {best.replicas_deployed} replica(s) "
            f"({best.replicas} sized, redundancy {best.redundancy}), {money}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ driver
