"""Fleet sizing: the fewest replicas of each option that meet every SLO of a scenario at its peak rate.

An option is evidence (a device kind's runs, or an assumed profile) x precision x batching config. The
search starts at the analytic lower bound (the fewest replicas whose sustainable throughput exceeds the
offered load: anything below is unstable, no simulation needed), gallops upward (n0, n0+1, n0+3, n0+7, ...)
until a count passes, then bisects. Every reported count was simulated as passing, and the count just
below it is reported with the SLO it failed and by how much. All counts of one option replay the same
request stream and service-time seed (common random numbers), so the comparison between counts is not
noise. Sizing uses the pessimistic end of each point's measured service-time CI and, among several runs of
one device kind, the slowest; the optimistic answer (fast end, fastest run) is searched downward from it.

What is simulated at "peak": Poisson and gamma arrivals at their rate; an MMPP's busiest state held steady;
each distinct hour of a diurnal day as its own steady process (the peak hour gives the always-on fleet, the
sum over hours the autoscaled device-hours); a trace replayed whole. Growth is applied throughout. Each
steady level simulates at most `sizing_requests` arrivals (the scenario's own count if smaller).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from measure.run import Run
from measure.run.types import ResultModel as _Out
from planner.fleet.levels import SIZING_REQUESTS, Level, levels
from planner.fleet.options import THROTTLE_FLAGS, OptionSpec, SizingError
from planner.fleet.searcher import Below, Searcher
from planner.serving.service import Bound, ServiceError, ServiceModel
from planner.serving.service_from import from_profile, from_run, scaled_model
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import SimReuse, Summary
from planner.traffic.arrivals import Requests, generate
from planner.traffic.scenario import Scenario
from planner.workers import Executor, TaskProgress, in_workers

MAX_REPLICAS = 1000


class LevelAnswer(_Out):
    """The sized count for one level with the simulation at that count."""

    label: str
    hours: list[int]
    rate_rps: float
    replicas: int | None  # None: no count up to the cap met the SLOs
    optimistic_replicas: int | None
    below: Below | None
    latency_ms: Summary | None
    latency_ci95_halfwidth_ms: Summary | None
    slo: list[dict[str, Any]]
    utilization: float | None
    mean_batch_size: float | None
    marginal_energy_j_per_request: float | None
    units_per_request: float
    reason: str | None  # why there is no answer


class SizedOption(_Out):
    """The search's answer for one option (before pricing)."""

    key: str
    label: str
    source: Literal["measured", "assumed"]
    evidence_ids: list[str]
    representative: str
    optimistic_evidence: str
    device: str
    group: str
    precision: str | None
    max_batch: int
    max_delay_ms: float
    router: str
    unit: str
    idle_power_w: float | None
    power_reason: str
    levels: list[LevelAnswer]
    simulations: int
    stopped_early: (
        int  # of those, simulations ended early by the sequential SLO rule (planner.serving.stopping)
    )
    reused: int  # of those, answered exactly by a simulation of another max_batch of the same evidence
    warnings: list[str]
    error: str | None  # the option could not be sized at all (e.g. a request larger than max_batch)
    quality: dict[str, Any] | None = None  # the precision's numeric-quality proxy vs fp32, where measured


@dataclass(frozen=True)
class Task:
    """Everything one worker needs to size one option (picklable)."""

    option: OptionSpec
    scenario: Scenario
    sizing_requests: int
    max_replicas: int
    service_scale: float = 1.0
    early_stop: bool = True


_TRAFFIC: dict[str, Requests] = {}


def traffic_for(sc: Scenario) -> Requests:
    """The scenario's request stream, generated once per process (the same stream for every count)."""
    key = sc.model_dump_json()
    hit = _TRAFFIC.get(key)
    if hit is None:
        rng = np.random.default_rng(np.random.SeedSequence(sc.seed).spawn(3)[0])
        hit = _TRAFFIC[key] = generate(sc, rng)
        if len(_TRAFFIC) > 64:
            _TRAFFIC.pop(next(iter(_TRAFFIC)))
    return hit


_MODELS: dict[tuple[str, str | None, Bound, bool], ServiceModel] = {}


def _run_model(run: Run, precision: str | None, bound: Bound, exclude: bool) -> ServiceModel:
    """The service model of a run, built once per process (runs are immutable, content-addressed)."""
    key = (run.id, precision, bound, exclude)
    hit = _MODELS.get(key)
    if hit is None:
        hit = _MODELS[key] = from_run(run, precision, THROTTLE_FLAGS if exclude else frozenset(), bound)
        if len(_MODELS) > 128:
            _MODELS.pop(next(iter(_MODELS)))
    return hit


def option_models(
    opt: OptionSpec, scale: float = 1.0
) -> tuple[ServiceModel, str, ServiceModel, str, list[str]]:
    """Pessimistic model (slowest run, slow CI end) and optimistic one (fastest run, fast CI end), with every
    service time multiplied by `scale` (1: as measured)."""
    ev = opt.evidence
    if ev.kind == "profile":
        assert ev.profile is not None
        m = scaled_model(from_profile(ev.profile), scale)
        return m, m.evidence, m, m.evidence, []
    b = opt.max_batch
    pess = [(_run_model(r, ev.precision, "pessimistic", opt.exclude_throttled), r.id) for r in ev.runs]
    opti = [(_run_model(r, ev.precision, "optimistic", opt.exclude_throttled), r.id) for r in ev.runs]
    slow = min(pess, key=lambda mp: mp[0].sustainable_items_per_s(b, _seq(mp[0])))
    fast = max(opti, key=lambda mp: mp[0].sustainable_items_per_s(b, _seq(mp[0])))
    slow_m, fast_m = scaled_model(slow[0], scale), scaled_model(fast[0], scale)
    return slow_m, slow[1], fast_m, fast[1], [r.id for r in ev.runs]


def _seq(m: ServiceModel) -> int | None:
    return m.seq_lens[0] if m.seq_lens else None


_REUSE: dict[tuple[Any, ...], SimReuse] = {}


def _evidence_key(opt: OptionSpec) -> tuple[Any, ...]:
    """What makes two options' service models the same: the evidence's content, not its file names."""
    ev = opt.evidence
    prof = ev.profile.model_dump_json() if ev.profile is not None else None
    return (ev.kind, tuple(r.id for r in ev.runs), prof, ev.precision, opt.exclude_throttled)


def _reuse(task: Task, lv: Level, bound: str) -> SimReuse:
    """The simulations this process has run for the task's evidence, batching delay, router and level."""
    assert lv.scenario is not None
    o = task.option
    key = (
        _evidence_key(o),
        bound,
        task.service_scale,
        o.max_delay_ms,
        o.router,
        lv.scenario.model_dump_json(),
        task.early_stop,
    )
    hit = _REUSE.get(key)
    if hit is None:
        hit = _REUSE[key] = SimReuse()
        if len(_REUSE) > 512:
            _REUSE.pop(next(iter(_REUSE)))
    return hit


def units_per_request(model: ServiceModel, reqs: Requests) -> float:
    """Mean work units per request: items x tokens per item, or items x units per item."""
    items = reqs.items.astype(np.float64)
    if model.units_per_item is None and reqs.seq_len is not None:
        return float(np.mean(items * reqs.seq_len))
    if model.units_per_item is None:
        return float(np.mean(items)) * float(model.seq_lens[0] if model.seq_lens else 1)
    return float(np.mean(items)) * model.units_per_item


def size_option(task: Task) -> SizedOption:
    """Size one option at every level of the scenario (runs in a worker process)."""
    opt = task.option
    policy = BatchPolicy(opt.max_batch, opt.max_delay_ms / 1000.0)
    pess, rep, opti, opt_ev, ids = option_models(opt, task.service_scale)
    lvls, _ = levels(task.scenario, task.sizing_requests)
    answers: list[LevelAnswer] = []
    sims = stopped = reused = 0
    warnings: list[str] = []
    error: str | None = None
    cap = task.max_replicas
    for lv in lvls:
        if lv.scenario is None:
            answers.append(_empty_level(lv))
            continue
        try:
            reqs = traffic_for(lv.scenario)
            s = Searcher(
                lv.scenario, pess, policy, opt.router, reqs, task.early_stop, _reuse(task, lv, "pessimistic")
            )
            best, reason = s.smallest(cap)
        except ServiceError as exc:
            error = str(exc)
            break
        units = units_per_request(pess, reqs)
        rate = lv.rate_rps if not math.isnan(lv.rate_rps) else len(reqs) / reqs.window_s
        if best is None:
            answers.append(_no_answer(lv, rate, units, reason or "no answer"))
            sims += s.simulations
            stopped += s.stopped_early
            reused += s.reused
            continue
        if not answers:  # the peak level's warnings speak for the option (lower hours repeat them)
            warnings.extend(best.result.warnings)
        optimistic = best.n
        if opti is not pess:
            o = Searcher(
                lv.scenario, opti, policy, opt.router, reqs, task.early_stop, _reuse(task, lv, "optimistic")
            )
            floor = o.lower_bound()
            n = best.n - 1
            while n >= floor and o.probe(n).ok:
                optimistic = n
                n -= 1
            sims += o.simulations
            stopped += o.stopped_early
            reused += o.reused
        below = s.below(best.n)
        sims += s.simulations
        stopped += s.stopped_early
        reused += s.reused
        r = best.result
        answers.append(
            LevelAnswer(
                label=lv.label,
                hours=list(lv.hours),
                rate_rps=rate,
                replicas=best.n,
                optimistic_replicas=optimistic,
                below=below,
                latency_ms=r.latency_ms,
                latency_ci95_halfwidth_ms=r.latency_ci95_halfwidth_ms,
                slo=[c.model_dump(mode="json") for c in r.slo],
                utilization=r.utilization,
                mean_batch_size=r.mean_batch_size,
                marginal_energy_j_per_request=r.marginal_energy_j_per_request,
                units_per_request=units,
                reason=None,
            )
        )
    return SizedOption(
        key=opt.key,
        label=opt.label,
        source=pess.source,
        evidence_ids=ids or [pess.evidence],
        representative=rep,
        optimistic_evidence=opt_ev,
        device=opt.evidence.device,
        group=opt.evidence.group,
        precision=opt.evidence.precision,
        max_batch=opt.max_batch,
        max_delay_ms=opt.max_delay_ms,
        router=opt.router,
        unit=pess.unit,
        idle_power_w=pess.idle_power_w,
        power_reason=pess.power_reason,
        levels=answers,
        simulations=sims,
        stopped_early=stopped,
        reused=reused,
        warnings=warnings,
        error=error,
        quality=_quality(opt, rep),
    )


def _quality(opt: OptionSpec, run_id: str) -> dict[str, Any] | None:
    """The representative run's quality proxy at the option's precision (None for profiles or not measured)."""
    if opt.evidence.kind != "run":
        return None
    run = next((r for r in opt.evidence.runs if r.id == run_id), None)
    if run is None or run.quality is None:
        return None
    entry = next((e for e in run.quality.entries if e.precision == opt.evidence.precision), None)
    if entry is None:
        return None
    return {
        "status": entry.status,
        "rel_l2_error": entry.rel_l2_error,
        "top1_agreement": entry.top1_agreement,
        "reference": run.quality.reference,
    }


def _empty_level(lv: Level) -> LevelAnswer:
    return LevelAnswer(
        label=lv.label,
        hours=list(lv.hours),
        rate_rps=0.0,
        replicas=0,
        optimistic_replicas=0,
        below=None,
        latency_ms=None,
        latency_ci95_halfwidth_ms=None,
        slo=[],
        utilization=None,
        mean_batch_size=None,
        marginal_energy_j_per_request=None,
        units_per_request=0.0,
        reason="no traffic in these hours",
    )


def _no_answer(lv: Level, rate: float, units: float, reason: str) -> LevelAnswer:
    return _empty_level(lv).model_copy(
        update={
            "rate_rps": rate,
            "replicas": None,
            "optimistic_replicas": None,
            "units_per_request": units,
            "reason": reason,
        }
    )


# ------------------------------------------------------------------------------------------------ driver


def size_all(
    scenario: Scenario,
    options: list[OptionSpec],
    *,
    sizing_requests: int = SIZING_REQUESTS,
    max_replicas: int = MAX_REPLICAS,
    jobs: int = 1,
    progress: TaskProgress | None = None,
    service_scale: float = 1.0,
    early_stop: bool = True,
    executor: Executor = "local",
) -> list[SizedOption]:
    """Size every option (in `jobs` worker processes, or on Ray); results in the order of `options`."""
    if not scenario.slo:
        raise SizingError(f"scenario {scenario.name} has no SLO: there is nothing to size against")
    tasks = [Task(o, scenario, sizing_requests, max_replicas, service_scale, early_stop) for o in options]
    # options that differ only in max_batch go to one worker, smallest first: their simulations are reused
    bundles: dict[tuple[Any, ...], list[int]] = {}
    for i, o in enumerate(options):
        bundles.setdefault((_evidence_key(o), o.max_delay_ms, o.router), []).append(i)
    order = [sorted(ix, key=lambda i: options[i].max_batch) for ix in bundles.values()]
    bundled = [Bundle(tuple(tasks[i] for i in ix)) for ix in order]
    sized = in_workers(size_bundle, bundled, jobs, progress, executor)
    out: dict[int, SizedOption] = {
        i: r for ix, rs in zip(order, sized, strict=True) for i, r in zip(ix, rs, strict=True)
    }
    return [out[i] for i in range(len(options))]


@dataclass(frozen=True)
class Bundle:
    """Options sized one after the other in one worker (they share simulations)."""

    tasks: tuple[Task, ...]

    @property
    def option(self) -> OptionSpec:
        return self.tasks[-1].option


def size_bundle(bundle: Bundle) -> list[SizedOption]:
    """Size a bundle's options in order (runs in a worker process)."""
    return [size_option(t) for t in bundle.tasks]


def run_tasks(
    tasks: list[Task], jobs: int = 1, progress: TaskProgress | None = None, executor: Executor = "local"
) -> list[SizedOption]:
    """Size each task's option under its scenario, in `jobs` worker processes; results in task order."""
    return in_workers(size_option, tasks, jobs, progress, executor)
