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

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict

from measure.run import Precision, Run
from planner.evidence.compare import comparability_key
from planner.serving.search import Verdict, smallest_passing
from planner.serving.service import (
    AssumedProfile,
    Bound,
    ServiceError,
    ServiceModel,
    from_profile,
    from_run,
    llm_not_served,
    load_profile,
    scaled_model,
)
from planner.serving.sim import BatchPolicy, Router
from planner.serving.simulation import SimResult, SimReuse, Summary, run_simulation
from planner.traffic.arrivals import Requests, generate
from planner.traffic.scenario import Diurnal, Gamma, Mmpp, Poisson, Scenario, Slo, Trace
from planner.workers import Executor, Progress, in_workers, load_run_cached

DEFAULT_MAX_BATCHES = (1, 4, 16, 64)  # kept where measured; the largest ok batch is always added
DEFAULT_MAX_DELAYS_MS = (0.0, 5.0)
SIZING_REQUESTS = 30_000
MAX_REPLICAS = 1000
HOURLY_MIN_REQUESTS = 2_000
OFF_PEAK_SHARE = 4  # hours below the peak simulate at most sizing_requests / this: they set device-hours only
THROTTLE_FLAGS = frozenset({"power-capped", "thermal-slowdown", "hw-slowdown"})


class SizingError(ValueError):
    """Sizing input that cannot be used (no SLO, no option, bad grid); the message says which and why."""


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)


# ------------------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class Evidence:
    """What an option's service times come from: runs of one device kind, or one assumed profile."""

    kind: Literal["run", "profile"]
    paths: tuple[str, ...]
    precision: str | None
    device: str  # device name (runs) or the profile's price-book key
    group: str  # comparability group label
    label: str
    # the parsed evidence itself: workers size from these and never read a file (a path can change under them)
    runs: tuple[Run, ...] = field(default=(), repr=False, compare=False)
    profile: AssumedProfile | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class OptionSpec:
    """One candidate configuration to size."""

    evidence: Evidence
    max_batch: int
    max_delay_ms: float
    router: Router
    exclude_throttled: bool = False

    @property
    def key(self) -> str:
        text = repr((self.evidence, self.max_batch, self.max_delay_ms, self.router, self.exclude_throttled))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def label(self) -> str:
        return f"{self.evidence.label}, max_batch {self.max_batch}, max_delay {self.max_delay_ms:g} ms"


@lru_cache(maxsize=16)
def _load_profile(path: str) -> AssumedProfile:
    return load_profile(path)


def _group_label(run: Run) -> str:
    w, m = run.workload, run.methodology
    params = ", ".join(f"{k}={v}" for k, v in sorted(w.parameters.items()))
    return f"{w.name} ({params}; {w.unit}; methodology v{m.methodology_version}, {m.iteration_scope})"


def build_options(
    runs: list[str | Path],
    profiles: list[str | Path],
    precisions: list[str] | None,
    max_batches: list[int] | None,
    max_delays_ms: list[float] | None,
    router: Router,
    exclude_throttled: bool = False,
    scenario: Scenario | None = None,
) -> tuple[list[OptionSpec], list[str]]:
    """The option grid and the combinations left out, each with its reason.

    A scenario whose requests are token sequences (size.seq_len) is only sized against evidence that was
    measured (or assumed) per sequence length: serving it on a workload without one would ignore the tokens.
    """
    skipped: list[str] = []
    unknown = sorted(set(precisions or []) - set(get_args(Precision)))
    if unknown:
        raise SizingError(
            f"unknown precision {', '.join(map(repr, unknown))}: use {', '.join(get_args(Precision))}"
        )
    tokens = scenario is not None and scenario.size.seq_len is not None
    # one device kind = same device, same CPU count, same intra-op threads: a serving configuration
    groups: dict[tuple[str, str, int, int, str], list[tuple[str, Run]]] = {}
    for path in runs:
        run = load_run_cached(str(path))
        if run.is_llm:
            skipped.append(llm_not_served(run))
            continue
        if tokens and not run.workload.has_seq_len:
            skipped.append(
                f"run {run.short_id()} ({run.workload.name}): the scenario's requests are token sequences and "
                "this workload has no sequence length"
            )
            continue
        dev = (run.stack.device_name, run.stack.device_kind, run.stack.cpu_count_usable)
        key = (
            *dev[:2],
            dev[2] if dev[1] == "cpu" else 0,
            run.stack.torch_num_threads,
            comparability_key(run),
        )
        groups.setdefault(key, []).append((str(path), run))
    evidence: list[tuple[Evidence, int]] = []
    for (device, _, _, threads, _), members in groups.items():
        ok_precisions = sorted({p.precision for _, r in members for p in r.points if p.status == "ok"})
        wanted = precisions or ok_precisions
        for prec in wanted:
            have = [
                (p, r) for p, r in members if any(q.status == "ok" and q.precision == prec for q in r.points)
            ]
            ids = ", ".join(r.short_id() for _, r in members)
            if not have:
                skipped.append(f"runs {ids} ({members[0][1].workload.name}): no ok point at {prec}")
                continue
            flags = THROTTLE_FLAGS if exclude_throttled else frozenset()
            try:
                models = [from_run(r, prec, flags) for _, r in have]
            except ServiceError as exc:
                skipped.append(str(exc))
                continue
            if scenario is not None and not tokens and models[0].seq_lens:
                # never a silent default length: the per-token price would rest on a number nobody chose
                skipped.append(
                    f"runs {ids} at {prec}: a token workload (measured at sequence lengths "
                    f"{models[0].seq_lens}) and the scenario gives no sequence lengths (add size.seq_len)"
                )
                continue
            max_b = min(m.max_batch for m in models)
            run0 = have[0][1]
            n = f"{len(have)} runs, slowest used" if len(have) > 1 else f"run {run0.short_id()}"
            evidence.append(
                (
                    Evidence(
                        "run",
                        tuple(p for p, _ in have),
                        prec,
                        device,
                        _group_label(run0),
                        f"{run0.workload.name} {prec} on {device}, {threads} thread{'s' if threads != 1 else ''} ({n})",
                        runs=tuple(r for _, r in have),
                    ),
                    max_b,
                )
            )
    for path in profiles:
        prof = _load_profile(str(path))
        if precisions:
            skipped.append(
                f"profile {prof.name}: --precision does not apply to an assumed profile (used as is)"
            )
        model = from_profile(prof)
        if tokens and None in model.tables:
            skipped.append(
                f"profile {prof.name}: the scenario's requests are token sequences and the profile gives no seq_len"
            )
            continue
        if scenario is not None and not tokens and model.seq_lens:
            skipped.append(
                f"profile {prof.name}: assumed at sequence lengths {model.seq_lens} and the scenario gives no "
                "sequence lengths (add size.seq_len)"
            )
            continue
        evidence.append(
            (
                Evidence(
                    "profile",
                    (str(path),),
                    None,
                    prof.device,
                    f"profiles ({prof.unit})",
                    f"ASSUMED profile {prof.name} ({prof.device})",
                    profile=prof,
                ),
                model.max_batch,
            )
        )
    if runs and not any(ev.kind == "run" for ev, _ in evidence):
        raise SizingError("no run can be sized: " + "; ".join(skipped))
    options: list[OptionSpec] = []
    for ev, max_b in evidence:
        if max_batches:
            batches = sorted({b for b in max_batches if b <= max_b})
        else:
            batches = sorted({b for b in DEFAULT_MAX_BATCHES if b <= max_b} | {max_b})
        for b in sorted(set(max_batches or [])):
            if b > max_b:
                skipped.append(f"{ev.label}: max_batch {b} is above the largest ok batch {max_b}")
        delays = sorted(set(max_delays_ms if max_delays_ms is not None else DEFAULT_MAX_DELAYS_MS))
        for b in batches:
            # with max_batch 1 a batch never waits for company: every delay is the same option
            for d in delays if b > 1 else delays[:1]:
                options.append(OptionSpec(ev, b, d, router, exclude_throttled))
    if not options:
        raise SizingError("no option to size: " + ("; ".join(skipped) or "give --runs or --profiles"))
    return options, skipped


# ------------------------------------------------------------------------------------------------ levels


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


class Below(_Out):
    """The count just below the answer, and why it fails."""

    replicas: int
    stable: bool
    failed_slo: str | None
    observed_ms: float | None
    threshold_ms: float | None
    by_ms: float | None  # observed - threshold
    reason: str


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


@dataclass
class Probe:
    """One simulated count: its result, whether every SLO held, and the worst observed/threshold ratio."""

    n: int
    result: SimResult
    ok: bool
    worst: float  # max observed / threshold over the SLOs (inf when unstable)


@dataclass
class Searcher:
    """Evaluates replica counts for one option and level, caching every simulation it runs."""

    sc: Scenario
    model: ServiceModel
    policy: BatchPolicy
    router: Router
    traffic: Requests
    early_stop: bool = False
    reuse: SimReuse | None = None  # simulations of the same evidence at other max_batch values
    cache: dict[int, Probe] = field(default_factory=dict)
    simulations: int = 0
    stopped_early: int = 0
    reused: int = 0  # counts answered by a simulation run for another max_batch (exact, see SimReuse)

    def lower_bound(self) -> int:
        seq = self.traffic.seq_len
        rep_seq = int(np.median(seq)) if seq is not None and None not in self.model.tables else None
        per = self.model.sustainable_items_per_s(self.policy.max_batch, rep_seq) / float(
            self.traffic.items.mean()
        )
        offered = len(self.traffic) / self.traffic.window_s
        return max(1, math.floor(offered / per) + 1)

    def probe(self, n: int) -> Probe:
        hit = self.cache.get(n)
        if hit is not None:
            return hit
        hits = self.reuse.hits if self.reuse is not None else 0
        r = run_simulation(
            self.sc,
            self.model,
            n,
            self.router,
            self.policy,
            traffic=self.traffic,
            early_stop=self.early_stop,
            reuse=self.reuse,
        )
        if r.stable:
            self.simulations += 1
            self.stopped_early += r.stopped_early is not None
            self.reused += (self.reuse.hits if self.reuse is not None else 0) - hits
        ratios = [(c.observed_ms / c.threshold_ms) if c.observed_ms is not None else math.inf for c in r.slo]
        p = Probe(n, r, r.stable and all(c.met for c in r.slo), max(ratios) if r.stable else math.inf)
        self.cache[n] = p
        return p

    def verdict(self, n: int) -> Verdict:
        p = self.probe(n)
        return Verdict(p.ok, p.result.stable, p.worst, p.result.utilization)

    def smallest(self, cap: int) -> tuple[Probe | None, str | None]:
        """The smallest passing count (the shared search, from the lower bound) or None with the reason."""
        found = smallest_passing(self.verdict, self.lower_bound(), cap)
        if found.replicas is not None:
            return self.probe(found.replicas), None
        if found.stuck_at is not None:
            p = self.probe(found.stuck_at)
            return None, (
                f"more replicas do not help: at {p.n} replicas (utilization {p.result.utilization:.0%}) "
                f"{_why(p)}; the service time itself is too slow for this SLO (try a smaller max_batch or "
                "max_delay, or a faster device or precision)"
            )
        last = self.probe(min(cap, max(found.last_failing, 1)))
        return None, f"no count up to the cap of {cap} replicas meets the SLOs ({_why(last)})"

    def below(self, n: int) -> Below | None:
        if n <= 1:
            return None
        p = self.probe(n - 1)
        if not p.result.stable:
            return Below(
                replicas=n - 1,
                stable=False,
                failed_slo=None,
                observed_ms=None,
                threshold_ms=None,
                by_ms=None,
                reason=f"unstable: offered {p.result.offered_rps:.4g} req/s >= sustainable "
                f"{p.result.sustainable_rps:.4g} req/s",
            )
        worst = max(p.result.slo, key=lambda c: (c.observed_ms or math.inf) / c.threshold_ms)
        obs = worst.observed_ms
        return Below(
            replicas=n - 1,
            stable=True,
            failed_slo=worst.slo,
            observed_ms=obs,
            threshold_ms=worst.threshold_ms,
            by_ms=None if obs is None else obs - worst.threshold_ms,
            reason=_why(p),
        )


def _why(p: Probe) -> str:
    if not p.result.stable:
        return f"{p.n} replicas are unstable"
    missed = [c for c in p.result.slo if not c.met]
    if not missed:
        return f"{p.n} replicas meet every SLO"
    c = max(missed, key=lambda c: (c.observed_ms or math.inf) / c.threshold_ms)
    return f"{c.slo} missed with {c.observed_ms:.4g} ms at {p.n} replicas"


# ------------------------------------------------------------------------------------------------ worker


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
    progress: Progress | None = None,
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
    tasks: list[Task], jobs: int = 1, progress: Progress | None = None, executor: Executor = "local"
) -> list[SizedOption]:
    """Size each task's option under its scenario, in `jobs` worker processes; results in task order."""
    return in_workers(size_option, tasks, jobs, progress, executor)


def with_slo_scale(sc: Scenario, factor: float) -> Scenario:
    """The scenario with every SLO threshold multiplied by factor (for sensitivity tables)."""
    slos = [
        Slo(metric=s.metric, percentile=s.percentile, threshold_ms=s.threshold_ms * factor) for s in sc.slo
    ]
    return sc.model_copy(update={"slo": slos})
