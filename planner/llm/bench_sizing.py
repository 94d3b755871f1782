"""Sizing from imported engine benchmarks when no run exists: the benchmarks' own levels are the evidence of
what one replica sustains while keeping the SLOs.

The files of one tool, model, engine, hardware and replica shape make one capacity curve (bench_curve.py): the
capacity of one replica is the rate where the curve first breaks an SLO, interpolated between the measured
levels around it and never beyond the fastest (the SLO's percentile must be one the tool reported: p50, p90,
p95 or p99; otherwise the level cannot be judged and says so). Replicas = ceil(offered rate / capacity), so a
sweep of several rate files gives the fewest replicas, not the upper bound of its slowest passing file.
No queueing is simulated: each replica is assumed to behave as the benchmark measured at that rate, which holds
only for traffic like the benchmark's (arrival shape, token lengths); differences in mean lengths are warned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from measure.run.types import ResultModel
from planner.evidence.engine_benchmark import EngineBenchmark
from planner.fleet.prices import HOURS_PER_MONTH, PriceBook, PriceError, Pricing
from planner.llm.bench_curve import capacity, curve_points
from planner.llm.simulation import llm_requests
from planner.traffic.scenario import Scenario

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
LENGTH_TOLERANCE = 0.2  # mean lengths further apart than this make the benchmark weaker evidence: warned


class BenchSized(ResultModel):
    """One benchmark curve's answer: replicas from its capacity at the SLOs, or why there is none."""

    benchmark_id: str  # the first file of the curve
    benchmark_ids: list[str]  # every file of the curve
    tool: str
    model: str
    hardware: str
    replica: str  # what one replica is, e.g. "8 devices (TP 8)"
    devices_per_replica: int
    evidence: str  # always says: an engine benchmark, measured by its tool, not simulated
    curve: list[str]  # every level on the curve, by rate ("tool id level")
    level: str | None  # the highest passing level at or below the capacity
    capacity_above: str | None  # the failing level the capacity was interpolated towards (None: at `level`)
    capacity_rps: float | None
    offered_rps: float
    replicas: int | None
    devices: int | None  # replicas x devices per replica: what is bought
    meets_slo: bool
    why: str | None
    slo: dict[str, float | None]  # the figures at the capacity (interpolated between two levels when it was)
    monthly_cost_usd: float | None
    usd_per_1m_output_tokens_all_in: float | None
    not_priced: str | None
    price_entry: str | None = None  # the price-book entry that priced it (its device key)
    another_model: str | None = None  # a benchmark of another model than the scenario's, kept on request: why
    warnings: list[str]


@dataclass(frozen=True)
class OfferedLoad:
    """What a generative scenario asks of the fleet: requests per second and mean token lengths."""

    rps: float
    prompt_mean: float
    output_mean: float

    @classmethod
    def of(cls, sc: Scenario) -> OfferedLoad:
        reqs, window, _ = llm_requests(sc)
        return cls(
            rps=reqs.arrival_s.size / window if window > 0 else 0.0,
            prompt_mean=float(reqs.prompt.mean()) if reqs.prompt.size else 0.0,
            output_mean=float(reqs.output.mean()) if reqs.output.size else 0.0,
        )


def size_from_curve(
    sc: Scenario, benches: Sequence[EngineBenchmark], book: PriceBook, pricing: Pricing, load: OfferedLoad
) -> BenchSized:
    """Replicas for the scenario's offered rate (`load`, drawn once per plan) from one curve's capacity at its
    SLOs: the benchmarks of one engine, model, hardware and replica shape, every level a point."""
    b = benches[0]
    points, notes = curve_points(benches)
    cap = capacity(points, sc.slo)
    tools = ", ".join(dict.fromkeys(f"{x.tool} {x.tool_version}" for x in benches))
    evidence = (
        f"engine benchmark curve of {len(points)} level(s) from {len(benches)} file(s) ({tools}): measured by "
        "the tool, interpolated between levels, not simulated"
    )
    common = dict(
        benchmark_id=b.id, benchmark_ids=[x.id for x in benches], tool=b.tool, model=b.model, hardware=b.hardware,
        replica=b.replica.label(), devices_per_replica=b.replica.devices, evidence=evidence,
        curve=[p.name for p in points], offered_rps=load.rps, slo=cap.figures,
    )  # fmt: skip
    if cap.rate_rps is None:
        return BenchSized(
            **common, level=None, capacity_above=None, capacity_rps=None, replicas=None, devices=None,
            meets_slo=False, why=cap.why, monthly_cost_usd=None, usd_per_1m_output_tokens_all_in=None,
            not_priced=None, warnings=notes,
        )  # fmt: skip
    warnings = [*notes, *cap.warnings]
    used = [p for p in points if p.rate_rps <= cap.rate_rps] or points[:1]
    for what, ours, theirs in (
        ("prompt", load.prompt_mean, [p.prompt_mean for p in used]),
        ("output", load.output_mean, [p.output_mean for p in used]),
    ):
        known = [t for t in theirs if t is not None]
        if len(known) < len(theirs):
            warnings.append(
                f"the benchmark does not report {what} lengths at every level: how well its traffic matches is "
                "unknown"
            )
        far = [t for t in known if ours and abs(t - ours) / ours > LENGTH_TOLERANCE]
        if far:
            warnings.append(
                f"the benchmark's mean {what} length ({far[0]:.0f} tokens) differs from the scenario's ({ours:.0f}) "
                f"by more than {LENGTH_TOLERANCE:.0%}: its capacity is weak evidence for this traffic"
            )
    replicas = max(1, math.ceil(load.rps / cap.rate_rps))
    priced = not_priced = entry = None
    try:
        found = book.for_hardware(b.hardware)
        price = found.price(pricing)
        priced, entry = price.usd_per_hour, found.device
        if not price.energy_included:
            warnings.append(
                f"energy cost missing: the {pricing} price does not pay for power and a benchmark measures none, "
                "so the monthly cost is a lower bound"
            )
    except PriceError as exc:
        not_priced = f"not priced: {exc}"
    devices = (
        replicas * b.replica.devices
    )  # priced per device-hour: a replica of 8 GPUs costs 8 GPU-hours an hour
    monthly = priced * devices * HOURS_PER_MONTH if priced is not None else None
    out_month = load.rps * load.output_mean * SECONDS_PER_MONTH
    return BenchSized(
        **common,
        level=cap.below,
        capacity_above=cap.above,
        capacity_rps=cap.rate_rps,
        replicas=replicas,
        devices=devices,
        meets_slo=True,
        why=None,
        monthly_cost_usd=monthly,
        usd_per_1m_output_tokens_all_in=monthly / out_month * 1e6 if monthly and out_month else None,
        not_priced=not_priced,
        price_entry=entry,
        warnings=list(dict.fromkeys(warnings)),
    )
