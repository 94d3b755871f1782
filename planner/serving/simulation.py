"""Scenario x service model x serving config -> a simulation result with percentiles, CIs, energy and SLOs.

The transient rule: the system starts empty, so the first `warmup_fraction` of the arrivals (10% by default,
by arrival order) are simulated but not counted. Stability is judged before simulating: when the mean
offered load reaches what the replicas can sustain with back-to-back batches of `max_batch`, the queue grows
without bound and the result is `stable: false` with the sustainable rate, never percentiles of that queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats as sps

from measure.run.types import ResultModel as _Out
from planner.serving import stopping
from planner.serving.batch_stats import batch_means, batch_percentiles
from planner.serving.service import ServiceError, ServiceModel, Source
from planner.serving.sim import BatchPolicy, Router, SimOutput, simulate
from planner.traffic.arrivals import Requests, generate
from planner.traffic.scenario import Scenario, Slo

CI_BATCHES = 20
MIN_FOR_CI = 20 * CI_BATCHES
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


class Summary(_Out):
    """Mean and percentiles in milliseconds (type-7 percentiles over the measured requests)."""

    mean: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float


class SloCheck(_Out):
    """One SLO against the simulation: observed value, its CI upper end, and whether it is met."""

    slo: str
    metric: str
    percentile: float
    threshold_ms: float
    observed_ms: float | None
    ci95_high_ms: float | None
    met: bool
    margin_ms: float | None  # threshold - observed: negative when missed


class SimResult(_Out):
    """Everything a simulation reports; `source` says whether the service times were measured or assumed."""

    source: Source
    source_label: str
    evidence: str
    inputs: dict[str, Any]
    stable: bool
    offered_rps: float
    peak_offered_rps: float | None
    sustainable_rps: float
    requests_total: int
    requests_measured: int
    warmup_excluded: int
    rejected: int
    throughput_rps: float | None
    latency_ms: Summary | None
    latency_ci95_halfwidth_ms: Summary | None
    queue_ms: Summary | None
    queue_ci95_halfwidth_ms: Summary | None
    utilization: float | None
    utilization_per_replica: list[float]
    mean_batch_size: float | None
    batch_size_histogram: dict[str, int]
    energy_j_per_request: float | None
    energy_j_per_unit: float | None
    marginal_energy_j_per_request: float | None  # (busy power - idle power) x service time, per request
    energy_note: str
    unit: str
    slo: list[SloCheck]
    transient_rule: str
    warnings: list[str]
    stopped_early: str | None = None  # why the simulation ended before the last arrival (sequential SLO rule)


def summarise_s(x: np.ndarray) -> Summary:
    """Mean and percentiles (PERCENTILES) in ms of durations given in seconds."""
    q = np.percentile(x, list(PERCENTILES.values()), method="linear") * 1000.0
    return Summary(
        mean=float(x.mean() * 1000.0), **{k: float(v) for k, v in zip(PERCENTILES, q, strict=True)}
    )


def batch_means_ci(x: np.ndarray) -> Summary | None:
    """Batch-means (and batch-quantile) 95% half-widths over CI_BATCHES contiguous batches (arrival order)."""
    if x.size < MIN_FOR_CI:
        return None
    rows = np.column_stack(
        [batch_means(x, CI_BATCHES), batch_percentiles(x, CI_BATCHES, list(PERCENTILES.values()))]
    )
    half = sps.t.ppf(0.975, CI_BATCHES - 1) * rows.std(axis=0, ddof=1) / np.sqrt(CI_BATCHES) * 1000.0
    return Summary(mean=float(half[0]), **{k: float(v) for k, v in zip(PERCENTILES, half[1:], strict=True)})


def slo_check(s: Slo, x: np.ndarray | None) -> SloCheck:
    """One SLO: the observed percentile, its batch-quantile 95% upper end, met or missed (None: no data)."""
    obs = hi = None
    if x is not None and x.size:
        obs = float(np.percentile(x, s.percentile, method="linear") * 1000.0)
        if x.size >= MIN_FOR_CI:
            per = batch_percentiles(x, CI_BATCHES, [s.percentile])[:, 0]
            half = sps.t.ppf(0.975, CI_BATCHES - 1) * np.std(per, ddof=1) / np.sqrt(CI_BATCHES) * 1000.0
            hi = obs + float(half)
    return SloCheck(
        slo=s.label(),
        metric=s.metric,
        percentile=s.percentile,
        threshold_ms=s.threshold_ms,
        observed_ms=obs,
        ci95_high_ms=hi,
        met=obs is not None and obs <= s.threshold_ms,
        margin_ms=None if obs is None else s.threshold_ms - obs,
    )


def _slo_checks(slos: list[Slo], lat: np.ndarray | None, queue: np.ndarray | None) -> list[SloCheck]:
    return [slo_check(s, lat if s.metric == "latency" else queue) for s in slos]


def _seq_for(sc: Scenario, model: ServiceModel, reqs: Requests, warnings: list[str]) -> np.ndarray | None:
    if None in model.tables:
        if reqs.seq_len is not None:
            warnings.append("the scenario gives sequence lengths but the workload has none: ignored")
        return None
    if reqs.seq_len is not None:
        return reqs.seq_len
    if len(model.seq_lens) == 1:
        return np.full(len(reqs), model.seq_lens[0], dtype=np.int64)
    raise ServiceError(
        f"the service model has sequence lengths {model.seq_lens}: the scenario must give size.seq_len"
    )


@dataclass(frozen=True)
class _Capture:
    """One simulation's output and what its sampler and stopping rule said."""

    out: SimOutput
    settled: stopping.Settled | None
    seq_over: int
    beyond_gap: int
    largest: int  # the largest batch launched, in items


@dataclass
class SimReuse:
    """Simulations of one model, router, max_delay and request stream at several max_batch values.

    A simulation whose largest batch m stayed below its max_batch is exactly the simulation of any max_batch
    above m: every launch took the whole queue and the "queue holds max_batch items" trigger never fired, so
    the same launches draw the same service times. Sizing reuses it instead of simulating again.
    """

    entries: dict[int, list[_Capture]] = field(default_factory=dict)
    hits: int = 0

    def find(self, replicas: int, max_batch: int) -> _Capture | None:
        hit = next((c for c in self.entries.get(replicas, []) if c.largest < max_batch), None)
        self.hits += hit is not None
        return hit

    def add(self, replicas: int, max_batch: int, cap: _Capture) -> None:
        if cap.largest < max_batch:  # only a run the cap never bound holds for other caps
            self.entries.setdefault(replicas, []).append(cap)


def _simulate_once(
    sc: Scenario,
    model: ServiceModel,
    reqs: Requests,
    seq: np.ndarray | None,
    replicas: int,
    router: Router,
    policy: BatchPolicy,
    service_rng: np.random.Generator,
    router_rng: np.random.Generator,
    warm: int,
    early_stop: bool,
) -> _Capture:
    sampler = model.sampler(service_rng)
    looks = stopping.look_arrivals(len(reqs), warm, sc.slo) if early_stop else []
    settled: list[stopping.Settled] = []
    sequential = stopping.Sequential(sc.slo, len(looks))

    def stop(decided: int, start: np.ndarray, done: np.ndarray, utilization: float) -> bool:
        ok = ~np.isnan(start[warm:decided])
        a = reqs.arrival_s[warm:decided][ok]
        lat, queue = done[warm:decided][ok] - a, start[warm:decided][ok] - a
        verdict = sequential.look(lat, queue, utilization)
        if verdict is not None:
            settled.append(verdict)
        return verdict is not None

    out = simulate(
        reqs.arrival_s,
        reqs.items,
        seq,
        replicas,
        router,
        policy,
        sampler.draw,
        router_rng,
        model.busy_power,
        looks=looks,
        stop=stop if looks else None,
    )
    largest = max(out.batch_sizes, default=0)
    return _Capture(out, settled[0] if settled else None, sampler.seq_over, sampler.beyond_gap, largest)


def run_simulation(
    sc: Scenario,
    model: ServiceModel,
    replicas: int,
    router: Router,
    policy: BatchPolicy,
    *,
    requests: int | None = None,
    seed: int | None = None,
    extra_inputs: dict[str, Any] | None = None,
    traffic: Requests | None = None,
    early_stop: bool = False,
    reuse: SimReuse | None = None,
) -> SimResult:
    """Generate the scenario's traffic, check stability, simulate and summarise. Same seed, same result.

    `traffic` replays a stream generated earlier from this scenario (the sizing search simulates many
    replica counts against one stream: common random numbers, and no regeneration). `early_stop` ends the
    simulation once every SLO's verdict is settled (planner.serving.stopping); the result says where and why. `reuse`
    holds earlier simulations of the same model, router, max_delay and stream (see SimReuse).
    """
    if requests is not None:
        sc = sc.model_copy(update={"requests": requests, "duration_s": None})
    if seed is not None:
        sc = sc.model_copy(update={"seed": seed})
    if policy.max_batch > model.max_batch:
        raise ServiceError(
            f"max_batch {policy.max_batch} is above what the model can serve: {model.limit_reason}"
        )
    traffic_rng, service_rng, router_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(sc.seed).spawn(3)
    )
    reqs = generate(sc, traffic_rng) if traffic is None else traffic
    warnings = [*reqs.notes, *model.warnings]
    if model.source == "assumed":
        warnings.insert(0, "assumed, not measured: service times come from an assumed profile")
    if int(reqs.items.max()) > policy.max_batch:
        raise ServiceError(
            f"a request has {int(reqs.items.max())} items, more than max_batch {policy.max_batch}"
        )
    seq = _seq_for(sc, model, reqs, warnings)
    n = len(reqs)
    offered = n / reqs.window_s if reqs.window_s > 0 else float("inf")
    peak = sc.peak_rate_rps()
    rep_seq = int(np.median(seq)) if seq is not None else None
    sustainable = (
        replicas * model.sustainable_items_per_s(policy.max_batch, rep_seq) / float(reqs.items.mean())
    )
    inputs = {
        "scenario": sc.name,
        "replicas": replicas,
        "router": router,
        "max_batch": policy.max_batch,
        "max_delay_ms": policy.max_delay_s * 1000.0,
        "queue_capacity": policy.capacity,
        "requests": sc.requests,
        "duration_s": sc.duration_s,
        "growth": sc.growth,
        "seed": sc.seed,
        **(extra_inputs or {}),
    }
    warm = int(np.floor(sc.warmup_fraction * n))
    rule = f"first {sc.warmup_fraction:.0%} of arrivals ({warm} requests) excluded: the system starts empty"
    common: dict[str, Any] = dict(
        source=model.source,
        source_label=model.label,
        evidence=model.evidence,
        inputs=inputs,
        offered_rps=offered,
        peak_offered_rps=peak,
        sustainable_rps=sustainable,
        requests_total=n,
        unit=model.unit,
        transient_rule=rule,
    )
    if offered >= sustainable:
        warnings.append(
            f"offered load {offered:.4g} req/s is at or above the sustainable {sustainable:.4g} req/s: "
            "the queue grows without bound, so no percentiles are reported"
        )
        return SimResult(
            **common,
            stable=False,
            requests_measured=0,
            warmup_excluded=warm,
            rejected=0,
            throughput_rps=None,
            latency_ms=None,
            latency_ci95_halfwidth_ms=None,
            queue_ms=None,
            queue_ci95_halfwidth_ms=None,
            utilization=1.0,
            utilization_per_replica=[1.0] * replicas,
            mean_batch_size=None,
            batch_size_histogram={},
            energy_j_per_request=None,
            energy_j_per_unit=None,
            marginal_energy_j_per_request=None,
            energy_note="not simulated: unstable",
            slo=_slo_checks(sc.slo, None, None),
            warnings=warnings,
        )
    if peak is not None and peak >= sustainable:
        warnings.append(
            f"the peak rate {peak:.4g} req/s exceeds the sustainable {sustainable:.4g} req/s: queues build up "
            "during peaks and drain after them"
        )
    cap = reuse.find(replicas, policy.max_batch) if reuse is not None else None
    if cap is None:
        cap = _simulate_once(
            sc, model, reqs, seq, replicas, router, policy, service_rng, router_rng, warm, early_stop
        )
        if reuse is not None:
            reuse.add(replicas, policy.max_batch, cap)
    out = cap.out
    stopped = None
    if cap.settled is not None:
        stopped = (
            f"stopped after {out.simulated:,} of {n:,} arrivals, SLO verdict settled "
            f"({'met' if cap.settled.met else 'missed'}): {cap.settled.reason}"
        )
    if cap.seq_over:
        warnings.append(
            f"{cap.seq_over} batches were longer than the longest measured sequence ({model.seq_lens[-1]}): "
            "they were served at that length's speed (optimistic)"
        )
    if cap.beyond_gap:
        warnings.append(
            f"{cap.beyond_gap} of {len(out.batch_sizes)} batches followed an idle time longer than the longest "
            "gap measured for their size: they were served at that gap's speed (optimistic if a longer idle "
            "slows a batch further)"
        )
    served = ~out.rejected & ~np.isnan(out.done_s)  # stopped early: the batches launched by then
    measured = served.copy()
    measured[:warm] = False
    measured[out.simulated :] = False
    lat = (out.done_s - reqs.arrival_s)[measured]
    queue = (out.start_s - reqs.arrival_s)[measured]
    span = out.end_s
    util = out.busy_s / span if span > 0 else np.zeros(replicas)
    units = reqs.items.astype(np.float64) * (seq if seq is not None else (model.units_per_item or 1.0))
    e_req: float | None
    e_unit: float | None
    e_marginal: float | None
    if model.busy_power is not None and model.idle_power_w is not None:
        energy = float(out.busy_energy_j.sum() + model.idle_power_w * np.sum(span - out.busy_s))
        e_req = energy / int(served.sum())
        e_unit = energy / float(units[served].sum())
        e_marginal = float(out.busy_energy_j.sum() - model.idle_power_w * out.busy_s.sum()) / int(
            served.sum()
        )
        note = "busy power at each batch size x service time + idle power x idle time, every replica"
    else:
        e_req = e_unit = e_marginal = None
        note = f"energy unavailable: {model.power_reason}"
    # achieved rate next to the offered one: every completed request over first arrival .. last completion
    first = float(reqs.arrival_s[0])
    last = float(np.nanmax(out.done_s)) if served.any() else 0.0
    hist = np.bincount(np.asarray(out.batch_sizes, dtype=np.int64), minlength=policy.max_batch + 1)
    return SimResult(
        **common,
        stable=True,
        requests_measured=int(measured.sum()),
        warmup_excluded=warm,
        rejected=int(out.rejected[: out.simulated].sum()),
        throughput_rps=float(served.sum() / (last - first)) if last > first else None,
        latency_ms=summarise_s(lat) if lat.size else None,
        latency_ci95_halfwidth_ms=batch_means_ci(lat),
        queue_ms=summarise_s(queue) if queue.size else None,
        queue_ci95_halfwidth_ms=batch_means_ci(queue),
        utilization=float(util.mean()),
        utilization_per_replica=[float(u) for u in util],
        mean_batch_size=float(np.mean(out.batch_sizes)) if out.batch_sizes else None,
        batch_size_histogram={str(b): int(c) for b, c in enumerate(hist) if c},
        energy_j_per_request=e_req,
        energy_j_per_unit=e_unit,
        marginal_energy_j_per_request=e_marginal,
        energy_note=note,
        slo=_slo_checks(sc.slo, lat, queue),
        warnings=warnings,
        stopped_early=stopped,
    )
