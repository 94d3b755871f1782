"""A sizing answer priced, grouped by comparability and ranked by one metric the user picks.

Cost, efficiency and value stay separate columns; the ranking orders options by one of them, within a
comparability group (same workload and methodology, or assumed profiles together), among the options that
meet every SLO. A redundancy policy is applied after sizing and shown beside the sized count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from measure.run.types import ResultModel as _Out
from planner.evidence.compare import differences
from planner.fleet.levels import SIZING_REQUESTS, levels, with_slo_scale
from planner.fleet.options import OptionSpec, SizingError, build_options
from planner.fleet.prices import DevicePrice, PriceBook, PriceError, Pricing
from planner.fleet.ranking import Group, PlannedOption, RankBy, answer_sentence, plan_option, rank
from planner.fleet.redundancy import Redundancy
from planner.fleet.sizing import MAX_REPLICAS, Task, run_tasks, size_all
from planner.serving import stopping
from planner.serving.sim import Router
from planner.traffic.scenario import Scenario
from planner.workers import Executor, TaskProgress


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
    redundancy: Redundancy = field(default_factory=Redundancy)
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
