"""A sizing answer priced, grouped by comparability and ranked by one metric the user picks.

Cost, efficiency and value stay separate columns; the ranking orders options by one of them, within a
comparability group (same workload and methodology, or assumed profiles together), among the options that
meet every SLO. A redundancy policy is applied after sizing and shown beside the sized count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from measure.run.types import ResultModel as _Out
from planner.evidence.compare import differences
from planner.fleet.cost import Cost, Load, price_fleet
from planner.fleet.levels import SIZING_REQUESTS, levels, with_slo_scale
from planner.fleet.options import OptionSpec, SizingError, build_options
from planner.fleet.prices import DevicePrice, PriceBook, PriceError, Pricing
from planner.fleet.searcher import Below
from planner.fleet.sizing import MAX_REPLICAS, SizedOption, Task, run_tasks, size_all
from planner.serving import stopping
from planner.serving.sim import Router
from planner.serving.simulation import Summary
from planner.traffic.scenario import Scenario
from planner.workers import Executor, TaskProgress

RankBy = Literal["monthly_cost", "cost_per_1k", "tokens_per_joule"]
RANK_BY: tuple[str, ...] = ("monthly_cost", "cost_per_1k", "tokens_per_joule")


@dataclass(frozen=True)
class Redundancy:
    """N+k spare replicas and/or a headroom fraction on top of the sized count."""

    spares: int = 0
    headroom: float = 0.0

    def __post_init__(self) -> None:
        if self.spares < 0 or not 0 <= self.headroom <= 10:
            raise ValueError(f"redundancy needs spares >= 0 and 0 <= headroom <= 10, got {self}")

    def apply(self, n: int) -> int:
        if n == 0:
            return 0  # an hour without traffic needs no spare either
        return math.ceil(n * (1 + self.headroom) - 1e-9) + self.spares

    def label(self) -> str:
        parts = ([f"N+{self.spares}"] if self.spares else []) + (
            [f"+{self.headroom:.0%} headroom"] if self.headroom else []
        )
        return ", ".join(parts) or "none (N+0)"


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


class Plan(_Out):
    """The answer to one sizing question."""

    scenario: str
    scenario_description: str
    slo: list[str]
    growth: float
    peak_rate_rps: float
    mean_rate_rps: float
    sized_at: str
    pricing: Pricing
    rank_by: RankBy
    redundancy: str
    sizing_requests: int
    service_scale: float
    options: list[PlannedOption]
    groups: list[Group]
    not_comparable: str | None
    skipped: list[str]
    simulations: int
    simulations_stopped_early: int
    simulations_reused: int  # counts answered by another max_batch's identical simulation (never re-run)
    stopping_rule: str
    answer: str


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


@dataclass(frozen=True)
class Question:
    """Everything a sizing answer depends on (the cache key of the app, the header of the report)."""

    scenario: Scenario
    runs: tuple[str, ...]
    profiles: tuple[str, ...] = ()
    precisions: tuple[str, ...] | None = None
    max_batches: tuple[int, ...] | None = None
    max_delays_ms: tuple[float, ...] | None = None
    router: Router = "central"
    pricing: Pricing = "on_demand"
    rank_by: RankBy = "monthly_cost"
    redundancy: Redundancy = Redundancy()
    sizing_requests: int = SIZING_REQUESTS
    max_replicas: int = MAX_REPLICAS
    exclude_throttled: bool = False
    service_scale: float = 1.0  # every service time x this: an explicit assumption (e.g. from a validation)
    early_stop: bool = True  # end each simulation once its SLO verdict is settled (planner.serving.stopping)


def _entries(q: Question, book: PriceBook, specs: list[OptionSpec]) -> dict[str, DevicePrice | str]:
    """The price entry of every option's evidence, or why it has none: a device the price book does not
    know (a new machine) makes a partial answer, sized but not priced, never a failed plan."""
    out: dict[str, DevicePrice | str] = {}
    for s in specs:
        ev = s.evidence
        try:
            entry = book.by_key(ev.device) if ev.kind == "profile" else book.for_run(ev.runs[0])
            entry.price(q.pricing)
        except PriceError as exc:
            out[s.key] = f"not priced: {exc}"
            continue
        out[s.key] = entry
    return out


def _not_comparable(specs: list[OptionSpec]) -> str | None:
    firsts: dict[str, OptionSpec] = {}
    for s in specs:
        firsts.setdefault(s.evidence.group, s)
    if len(firsts) < 2:
        return None
    items = list(firsts.values())
    a = items[0]
    parts = []
    for b in items[1:]:
        if a.evidence.kind != b.evidence.kind:
            fields = "source (measured vs assumed)"
        else:
            if a.evidence.kind == "run":
                diffs = differences(a.evidence.runs[0], b.evidence.runs[0])
                fields = ", ".join(d.field for d in diffs) or "workload"
            else:
                fields = "unit"
        parts.append(f"'{a.evidence.group}' vs '{b.evidence.group}' differ in {fields}")
    return "not comparable across groups: " + "; ".join(parts) + " (each group is ranked on its own)"


def options_for(q: Question) -> tuple[list[OptionSpec], list[str]]:
    """The question's option grid and what it left out (see sizing.build_options)."""
    return build_options(
        list(q.runs),
        list(q.profiles),
        list(q.precisions) if q.precisions else None,
        list(q.max_batches) if q.max_batches else None,
        list(q.max_delays_ms) if q.max_delays_ms is not None else None,
        q.router,
        q.exclude_throttled,
        q.scenario,
    )


def make_plan(
    q: Question,
    book: PriceBook,
    jobs: int = 1,
    progress: TaskProgress | None = None,
    executor: Executor = "local",
) -> Plan:
    """Build the option grid, check prices, size every option, price, rank and summarise."""
    sc = q.scenario
    if not sc.slo:
        raise SizingError(f"scenario {sc.name} has no SLO: there is nothing to size against")
    specs, skipped = options_for(q)
    entries = _entries(q, book, specs)
    sized = size_all(
        sc,
        specs,
        sizing_requests=q.sizing_requests,
        max_replicas=q.max_replicas,
        jobs=jobs,
        progress=progress,
        service_scale=q.service_scale,
        early_stop=q.early_stop,
        executor=executor,
    )
    planned = []
    for spec, s in zip(specs, sized, strict=True):
        if s.error is not None and not s.levels:
            skipped.append(f"{s.label}: {s.error}")
            continue
        planned.append(plan_option(sc, s, entries[spec.key], book, q.pricing, q.redundancy))
    if not planned:
        raise SizingError("no option could be sized: " + "; ".join(skipped))
    ordered, groups = rank(planned, q.rank_by)
    lv, sized_at = levels(sc, q.sizing_requests)
    observed = next((s.levels[0].rate_rps for s in sized if s.levels), 0.0)  # trace: its measured rate
    peak = max((x.rate_rps for x in lv if not math.isnan(x.rate_rps)), default=observed)
    mean = sc.mean_rate_rps() or observed
    return Plan(
        scenario=sc.name,
        scenario_description=sc.description,
        slo=[s.label() for s in sc.slo],
        growth=sc.growth,
        peak_rate_rps=peak,
        mean_rate_rps=mean,
        sized_at=sized_at,
        pricing=q.pricing,
        rank_by=q.rank_by,
        redundancy=q.redundancy.label(),
        sizing_requests=q.sizing_requests,
        service_scale=q.service_scale,
        options=ordered,
        groups=groups,
        not_comparable=_not_comparable(specs),
        skipped=skipped,
        simulations=sum(s.simulations for s in sized),
        simulations_stopped_early=sum(s.stopped_early for s in sized),
        simulations_reused=sum(s.reused for s in sized),
        stopping_rule=stopping.rule_text() if q.early_stop else "every simulation runs to full length",
        answer=answer_sentence(ordered, q.rank_by),
    )


# ------------------------------------------------------------------------------------------------ sensitivity

GROWTH_FACTORS = (0.5, 1.0, 1.5, 2.0, 3.0)
SLO_FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5)


class SensitivityRow(_Out):
    """The best option of a group re-sized with growth or every SLO threshold scaled."""

    option: str
    label: str
    vary: Literal["growth", "slo"]
    factor: float
    replicas: int | None
    replicas_deployed: int | None
    monthly_cost_usd: float | None
    reason: str | None


def sensitivity(
    q: Question,
    book: PriceBook,
    plan: Plan,
    jobs: int = 1,
    progress: TaskProgress | None = None,
    executor: Executor = "local",
) -> list[SensitivityRow]:
    """Growth x0.5..x3 and SLO thresholds x0.5..x1.5 for the best option of each group (factor 1 reused)."""
    best = {o.key: o for o in plan.options if o.rank == 1}
    specs, _ = options_for(q)
    chosen = [s for s in specs if s.key in best]
    entries = _entries(q, book, chosen)
    sc = q.scenario
    variants: list[tuple[str, float, Scenario]] = [
        ("growth", f, sc.model_copy(update={"growth": sc.growth * f})) for f in GROWTH_FACTORS if f != 1.0
    ] + [("slo", f, with_slo_scale(sc, f)) for f in SLO_FACTORS if f != 1.0]
    tasks = [
        Task(s, v[2], q.sizing_requests, q.max_replicas, q.service_scale, q.early_stop)
        for s in chosen
        for v in variants
    ]
    sized = run_tasks(tasks, jobs, progress, executor)
    rows: list[SensitivityRow] = []
    it = iter(sized)
    for s in chosen:
        base = best[s.key]
        for vary, f in [("growth", 1.0), ("slo", 1.0)]:
            rows.append(_row(base, vary, f))  # type: ignore[arg-type]
        for vary, f, vsc in variants:
            p = plan_option(vsc, next(it), entries[s.key], book, q.pricing, q.redundancy)
            rows.append(_row(p, vary, f))  # type: ignore[arg-type]
    rows.sort(key=lambda r: (r.option, r.vary, r.factor))
    return rows


def _row(p: PlannedOption, vary: Literal["growth", "slo"], factor: float) -> SensitivityRow:
    return SensitivityRow(
        option=p.key,
        label=p.label,
        vary=vary,
        factor=factor,
        replicas=p.replicas,
        replicas_deployed=p.replicas_deployed,
        monthly_cost_usd=p.monthly_cost_usd,
        reason=p.reason,
    )
