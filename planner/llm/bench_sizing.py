"""Sizing from an imported engine benchmark when no curves exist: the benchmark's own levels are the evidence of
what one replica sustains while keeping the SLOs.

Per benchmark, the capacity of one replica is the highest completed request rate among its levels whose
reported percentiles meet every SLO of the scenario (the SLO's percentile must be one the tool reported: p50,
p90, p95 or p99; otherwise the level cannot be judged and says so). Replicas = ceil(offered rate / capacity).
No queueing is simulated: each replica is assumed to behave as the benchmark measured at that rate, which holds
only for traffic like the benchmark's (arrival shape, token lengths); differences in mean lengths are warned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from measure.run.types import ResultModel
from planner.evidence.engine_benchmark import BenchLevel, EngineBenchmark, Stat
from planner.fleet.prices import HOURS_PER_MONTH, PriceBook, PriceError, Pricing
from planner.llm.simulation import llm_requests
from planner.traffic.scenario import Scenario

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
LENGTH_TOLERANCE = 0.2  # mean lengths further apart than this make the benchmark weaker evidence: warned
PERCENTILE_FIELDS = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99"}


class BenchSized(ResultModel):
    """One benchmark's answer: replicas from its measured capacity at the SLOs, or why there is none."""

    benchmark_id: str
    tool: str
    model: str
    hardware: str
    replica: str  # what one replica is, e.g. "8 devices (TP 8)"
    devices_per_replica: int
    evidence: str  # always says: an engine benchmark, not curves
    level: str | None  # the level whose rate is the capacity
    capacity_rps: float | None
    offered_rps: float
    replicas: int | None
    devices: int | None  # replicas x devices per replica: what is bought
    meets_slo: bool
    why: str | None
    slo: dict[str, float | None]  # reported figures at the capacity level
    monthly_cost_usd: float | None
    usd_per_1m_output_tokens_all_in: float | None
    not_priced: str | None
    price_entry: str | None = None  # the price-book entry that priced it (its device key)
    another_model: str | None = None  # a benchmark of another model than the scenario's, kept on request: why
    warnings: list[str]


def _figure(level: BenchLevel, metric: str, percentile: float) -> float | str | None:
    key = PERCENTILE_FIELDS.get(percentile)
    if key is None:
        return f"the tools report p50/p90/p95/p99, not p{percentile:g}"
    stat: Stat | None = getattr(level, metric, None)
    if stat is None:
        return f"the level reports no {metric}"
    v = getattr(stat, key)
    return v if v is not None else f"the level reports no {metric} {key}"


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


def size_from_benchmark(
    sc: Scenario, b: EngineBenchmark, book: PriceBook, pricing: Pricing, load: OfferedLoad
) -> BenchSized:
    """Replicas for the scenario's offered rate (`load`, drawn once per plan) from one benchmark's capacity at
    its SLOs."""
    offered, prompt_mean, out_mean = load.rps, load.prompt_mean, load.output_mean
    best: tuple[float, BenchLevel, dict[str, float | None]] | None = None
    unjudged: list[str] = []
    for lv in b.levels:
        rate = lv.request_rps or lv.rate_rps
        if not rate or lv.completed == 0:
            continue
        figures: dict[str, float | None] = {}
        ok = True
        for s in sc.slo:
            got = _figure(lv, s.metric, s.percentile)
            if isinstance(got, str):
                unjudged.append(f"{lv.label}: {got}")
                ok = False
                break
            figures[s.label()] = got
            ok &= got is not None and got <= s.threshold_ms
        if ok and (best is None or rate > best[0]):
            best = (rate, lv, figures)
    warnings: list[str] = []
    evidence = (
        f"engine benchmark {b.short_id()} ({b.tool} {b.tool_version}), measured by the tool, not curves"
    )
    if best is None:
        why = "no level of the benchmark meets every SLO" + (
            f" ({'; '.join(unjudged[:3])})" if unjudged else ""
        )
        return BenchSized(
            benchmark_id=b.id, tool=b.tool, model=b.model, hardware=b.hardware, replica=b.replica.label(),
            devices_per_replica=b.replica.devices, evidence=evidence, level=None, capacity_rps=None,
            offered_rps=offered, replicas=None, devices=None, meets_slo=False, why=why, slo={},
            monthly_cost_usd=None, usd_per_1m_output_tokens_all_in=None, not_priced=None, warnings=warnings,
        )  # fmt: skip
    rate, lv, figures = best
    for what, theirs, ours in (
        ("prompt", lv.prompt_tokens.mean if lv.prompt_tokens else None, prompt_mean),
        ("output", lv.output_tokens.mean if lv.output_tokens else None, out_mean),
    ):
        if theirs is None:
            warnings.append(
                f"the benchmark does not report {what} lengths: how well its traffic matches is unknown"
            )
        elif ours and abs(theirs - ours) / ours > LENGTH_TOLERANCE:
            warnings.append(
                f"the benchmark's mean {what} length ({theirs:.0f} tokens) differs from the scenario's ({ours:.0f}) "
                f"by more than {LENGTH_TOLERANCE:.0%}: its capacity is weak evidence for this traffic"
            )
    top = max((x.request_rps or x.rate_rps or 0.0) for x in b.levels)
    if rate >= top:
        warnings.append(
            f"the benchmark's fastest level ({rate:.3g} req/s) met every SLO: one replica may sustain more, so "
            "this count is an upper bound"
        )
    replicas = max(1, math.ceil(offered / rate))
    priced = not_priced = entry = None
    try:
        found = book.for_hardware(b.hardware)
        priced, entry = found.price(pricing).usd_per_hour, found.device
    except PriceError as exc:
        not_priced = f"not priced: {exc}"
    devices = (
        replicas * b.replica.devices
    )  # priced per device-hour: a replica of 8 GPUs costs 8 GPU-hours an hour
    monthly = priced * devices * HOURS_PER_MONTH if priced is not None else None
    out_month = offered * out_mean * SECONDS_PER_MONTH
    return BenchSized(
        benchmark_id=b.id,
        tool=b.tool,
        model=b.model,
        hardware=b.hardware,
        replica=b.replica.label(),
        devices_per_replica=b.replica.devices,
        evidence=evidence,
        level=lv.label,
        capacity_rps=rate,
        offered_rps=offered,
        replicas=replicas,
        devices=devices,
        meets_slo=True,
        why=None,
        slo=figures,
        monthly_cost_usd=monthly,
        usd_per_1m_output_tokens_all_in=monthly / out_month * 1e6 if monthly and out_month else None,
        not_priced=not_priced,
        price_entry=entry,
        warnings=warnings,
    )
