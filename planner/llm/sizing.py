"""Sizing LLM fleets: per option (run x precision x engine knobs), the fewest replicas that keep every TTFT,
TPOT, ITL and E2E SLO and stable queues, and what that costs per month and per 1M input and output tokens.

The replica search doubles from 1 until the SLOs hold, then bisects between the last miss and the first hit
(more replicas never make an SLO worse under these routers). Cost is split between input and output tokens
by the engine's busy time in prefill and in decode (input tokens as computed: with prefix caching, those found
cached are not counted); the all-in cost per 1M output tokens (every dollar on the
output) is given beside it. Energy figures are separate columns: output tokens per joule and all tokens per
joule. An option whose device has no price is sized and listed as not priced.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pydantic import Field

from measure.run.types import ResultModel
from planner.evidence.engine_benchmark import EngineBenchmark
from planner.fleet.prices import HOURS_PER_MONTH, Electricity, PriceBook, PriceError, Pricing
from planner.fleet.redundancy import Redundancy
from planner.llm.bench_curve import group_benchmarks
from planner.llm.bench_sizing import BenchSized, OfferedLoad, size_from_curve
from planner.llm.disagg import KvLink, decode_pool
from planner.llm.engine import EngineConfig, EngineError
from planner.llm.model_match import benchmark_mismatch, profile_mismatch, run_mismatch
from planner.llm.roofline import LlmProfile, LlmProfileError, load_llm_profile
from planner.llm.simulation import LlmResult, llm_requests, run_llm_simulation
from planner.llm.sources import (
    Source,
    is_assumed,
    load_source,
    source_device,
    source_kv_blocks,
    source_kv_bytes,
    source_precisions,
    source_price,
    source_shape,
    source_step_model,
)
from planner.llm.steps import StepModel, StepModelError
from planner.serving.search import Verdict, smallest_passing
from planner.traffic.scenario import Scenario
from planner.workers import Executor, TaskProgress, in_workers, load_run_cached

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
DEFAULT_SEQS = (64, 256)
DEFAULT_BATCHED_TOKENS = (2048, 8192)
ASSUMED_WARNING = "{}: a roofline of datasheet figures at stated efficiencies, not measured"


class LlmSizingError(ValueError):
    """A question that cannot be sized (no SLO, no LLM run, a non-generative scenario)."""


@dataclass(frozen=True)
class LlmOption:
    """One configuration to size."""

    run: str
    precision: str
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    prefix_caching: bool = False  # vLLM's automatic prefix caching, routed prefix-aware
    router: str | None = None  # None: least-outstanding, or prefix-aware with the cache
    link: KvLink | None = None  # set: prefill and decode pools of this shape, the split searched

    @property
    def label(self) -> str:
        chunk = "chunked" if self.chunked_prefill else "whole prompts"
        cache = ", prefix cache" if self.prefix_caching else ""
        routed = f", routed {self.router}" if self.router else ""
        split = ", disaggregated" if self.link else ""
        return (
            f"{self.precision}, max_num_seqs {self.max_num_seqs}, {self.max_num_batched_tokens} tokens/step, "
            f"{chunk}{cache}{routed}{split}"
        )


def default_router(prefix_caching: bool) -> str:
    """The router an option is simulated with when none is chosen."""
    return "prefix-aware" if prefix_caching else "least-outstanding"


class LlmSized(ResultModel):
    """An option's answer: replicas, the SLO figures at that count, cost and energy, or why there is none."""

    run: str  # the run's file, or the assumed LLM profile's
    run_id: str
    device: str
    source: Literal["measured", "assumed"] = "measured"  # assumed: a roofline profile, never evidence
    precision: str
    max_num_seqs: int
    max_num_batched_tokens: int
    chunked_prefill: bool
    kv_blocks: int
    # prefix caching on (routed prefix-aware): the share of prompt tokens found cached at the sized count
    prefix_caching: bool = False
    prefix_hit_share: float | None = None
    router: str | None = None  # chosen to compare routers (None: the default for its cache)
    disaggregated: bool = False  # prefill and decode pools: `replicas` is their sum
    prefill_replicas: int | None = None
    decode_replicas: int | None = None
    kv_link: tuple[float, float, float] | None = None  # disaggregated: GB/s, ms a transfer, KV bytes a token
    replicas: int | None  # the fewest meeting every SLO
    replicas_deployed: int | None = None  # after the redundancy policy: what is bought and costed
    redundancy: str = "none (N+0)"
    replica: str = "1 device"  # what one replica is, e.g. "8 devices (TP 8)"
    devices_per_replica: int = 1
    devices_deployed: int | None = None  # replicas_deployed x devices per replica: priced per device-hour
    meets_slo: bool
    why: str | None
    simulations: int
    slo: dict[str, float | None]
    goodput_rps: float | None
    monthly_cost_usd: float | None  # devices, plus energy where the price does not include it
    energy_usd_per_month: float | None = (
        None  # the energy in it (owned hardware): None when included or unknown
    )
    energy_cost_note: str | None = None  # how the energy was costed, or why the cost is a lower bound
    usd_per_1m_input_tokens: float | None
    usd_per_1m_output_tokens: float | None
    usd_per_1m_output_tokens_all_in: float | None
    output_tokens_per_joule: float | None
    total_tokens_per_joule: float | None
    not_priced: str | None
    price_entry: str | None = None  # the price-book entry that priced it (its device key)
    another_model: str | None = None  # evidence of another model than the scenario's, kept on request: why
    warnings: list[str]

    @property
    def shown_device(self) -> str:
        """The device as every table shows it: ASSUMED in front of a roofline's."""
        return f"ASSUMED {self.device}" if self.source == "assumed" else self.device

    @property
    def label(self) -> str:
        prefill = "chunked" if self.chunked_prefill else "whole"
        cache = " prefix-cache" if self.prefix_caching else ""
        routed = f" {self.router}" if self.router else ""
        split = " disaggregated" if self.disaggregated else ""
        return (
            f"{self.shown_device} {self.precision} seqs {self.max_num_seqs} tok {self.max_num_batched_tokens} "
            f"{prefill}{cache}{routed}{split}"
        )


class LlmPlan(ResultModel):
    """Every option sized, the cheapest that meets the SLOs, and the answer in a sentence."""

    scenario: str
    slos: list[str]
    pricing: Pricing
    options: list[LlmSized]
    answer: str
    notes: list[str]
    best: str | None = None  # the label of the option the answer names ("benchmark:<id>" for a curve)
    from_benchmarks: list[BenchSized] = Field(
        default_factory=list
    )  # sized on imported engine benchmark curves (measured by their tool, not simulated), labelled so


def _cache_words(o: LlmSized) -> str:
    """How the answer names a prefix-cached or disaggregated option: the cache and the share it found
    (simulated), the split."""
    split = (
        f", disaggregated: {o.prefill_replicas} prefill + {o.decode_replicas} decode replicas"
        if o.disaggregated and o.prefill_replicas
        else ""
    )
    return split + _cached(o)


def _cached(o: LlmSized) -> str:
    if not o.prefix_caching:
        return ""
    hit = (
        ""
        if o.prefix_hit_share is None
        else f", {o.prefix_hit_share:.0%} of prompt tokens cached (simulated)"
    )
    return f", prefix caching routed {o.router or default_router(True)}{hit}"


def _meets(r: LlmResult) -> bool:
    return r.stable and all(c.met for c in r.slo)


def _worst(r: LlmResult) -> tuple[float, str]:
    """The SLO furthest from its threshold: observed / threshold, and its label (inf when not observed)."""
    return max(
        (
            (c.observed_ms / c.threshold_ms if c.observed_ms is not None else float("inf"), c.slo)
            for c in r.slo
        ),
        default=(0.0, "none"),
    )


class ReplicaCounts:
    """One option's simulations by replica count (its router: by default least-outstanding, prefix-aware with the
    prefix cache), each count simulated once: the replica searches of sizing and of the SLO explorer's ladders
    probe counts through it."""

    def __init__(
        self,
        sc: Scenario,
        run: Source,
        model: StepModel,
        cfg: EngineConfig,
        requests: int,
        router: str | None = None,
    ) -> None:
        self.sc, self.run, self.model, self.cfg, self.requests = sc, run, model, cfg, requests
        self.router = router or default_router(cfg.prefix_caching)
        self._done: dict[int, LlmResult] = {}

    def __call__(self, n: int) -> LlmResult:
        if n not in self._done:
            self._done[n] = run_llm_simulation(
                self.sc, self.model, self.cfg, n, self.router, self.run, self.requests
            )
        return self._done[n]

    def verdict(self, n: int) -> Verdict:
        r = self(n)
        return Verdict(_meets(r), r.stable, _worst(r)[0] if r.stable else float("inf"), r.utilization)

    @property
    def simulations(self) -> int:
        return len(self._done)


def size_option(
    sc: Scenario,
    opt: LlmOption,
    run: Source,
    book: PriceBook,
    pricing: Pricing,
    requests: int,
    max_replicas: int,
    kv_blocks: int | None,
    redundancy: Redundancy = Redundancy(),
) -> LlmSized:
    """The fewest replicas meeting every SLO for one option; cost at that count after the redundancy policy
    (N+k spares, headroom), energy per token at the sized count."""
    model = source_step_model(run, opt.precision)
    cfg = EngineConfig(
        opt.max_num_seqs,
        opt.max_num_batched_tokens,
        opt.chunked_prefill,
        16,
        source_kv_blocks(run, opt.precision, 16, kv_blocks),
        opt.prefix_caching,
    )
    split: tuple[int, int] | None = None
    if opt.link is not None:
        searched = split_search(sc, run, model, cfg, requests, opt.router, opt.link, max_replicas)
        split, best, simulations, stuck = searched.split, searched.result, searched.simulations, searched.why
        hi, lo = (sum(split), 0) if split else (0, max_replicas)
    else:
        sim = ReplicaCounts(sc, run, model, cfg, requests, opt.router)
        search = smallest_passing(sim.verdict, 1, max_replicas)
        hi, lo = search.replicas or 0, search.last_failing
        stuck = None
        if search.stuck_at is not None:  # a lone request's steps already exceed the SLO
            ratio, label = _worst(sim(search.stuck_at))
            stuck = f"more replicas do not help: {label} stays {ratio:.2f}x its threshold at {search.stuck_at} replicas"
        best = sim(hi) if hi else sim(max(lo, 1))
        simulations = sim.simulations
    priced, not_priced, entry, price = None, None, None, None
    try:
        found = source_price(book, run)
        price = found.price(pricing)
        priced, entry = price.usd_per_hour, found.device
    except PriceError as exc:
        not_priced = f"not priced: {exc}"
    # disaggregated: each pool gets the redundancy policy (a spare prefill and a spare decode replica for N+1)
    deployed = (
        (redundancy.apply(split[0]) + redundancy.apply(split[1]) if split else redundancy.apply(hi))
        if hi
        else None
    )
    shape = source_shape(run)
    devices = deployed * shape.devices if deployed else None  # a replica of 8 GPUs costs 8 GPU-hours an hour
    monthly = priced * devices * HOURS_PER_MONTH if priced is not None and devices else None
    energy_usd, energy_note = None, None
    if price is not None and not price.energy_included and monthly is not None and devices:
        energy_usd, energy_note = _energy_cost(run, best, devices, book.electricity)
        monthly += energy_usd or 0.0
    # with the cache, input tokens count as the engine computed them: a cached prompt token is not bought
    computed = 1.0 if best.computed_prompt_share is None else best.computed_prompt_share
    in_month = best.offered_rps * _mean(sc, best, "input") * computed * SECONDS_PER_MONTH
    out_month = best.offered_rps * _mean(sc, best, "output") * SECONDS_PER_MONTH
    share = best.prefill_busy_share
    return LlmSized(
        run=opt.run,
        run_id=run.id,
        device=source_device(run),
        source="assumed" if is_assumed(run) else "measured",
        precision=opt.precision,
        max_num_seqs=opt.max_num_seqs,
        max_num_batched_tokens=opt.max_num_batched_tokens,
        chunked_prefill=opt.chunked_prefill,
        kv_blocks=cfg.kv_blocks,
        prefix_caching=opt.prefix_caching,
        prefix_hit_share=best.prefix_hit_share,
        router=opt.router,
        disaggregated=opt.link is not None,
        prefill_replicas=split[0] if split else None,
        decode_replicas=split[1] if split else None,
        kv_link=(opt.link.gb_per_s, opt.link.latency_ms, opt.link.kv_bytes_per_token) if opt.link else None,
        replicas=hi or None,
        replicas_deployed=deployed,
        redundancy=redundancy.label(),
        replica=shape.label(),
        devices_per_replica=shape.devices,
        devices_deployed=devices,
        meets_slo=bool(hi),
        why=None if hi else stuck or f"SLOs not met with {lo} replicas (the --max-replicas limit)",
        simulations=simulations,
        slo={c.slo: c.observed_ms for c in best.slo},
        goodput_rps=best.goodput_rps,
        monthly_cost_usd=monthly,
        energy_usd_per_month=energy_usd,
        energy_cost_note=energy_note,
        usd_per_1m_input_tokens=monthly * share / in_month * 1e6 if monthly and in_month else None,
        usd_per_1m_output_tokens=monthly * (1 - share) / out_month * 1e6 if monthly and out_month else None,
        usd_per_1m_output_tokens_all_in=monthly / out_month * 1e6 if monthly and out_month else None,
        output_tokens_per_joule=best.output_tokens_per_joule,
        total_tokens_per_joule=best.total_tokens_per_joule,
        not_priced=not_priced,
        price_entry=entry,
        warnings=[
            *([ASSUMED_WARNING.format(run.label())] if isinstance(run, LlmProfile) else []),
            *([energy_note] if energy_note else []),
            *best.warnings,
        ],
    )


def _link_for(
    run: Source, precision: str, given: tuple[float, float, float | None] | None
) -> tuple[KvLink | None, str]:
    """The KV link of a disaggregated option: bandwidth and latency as given, KV bytes as given or the run's."""
    if given is None:
        return None, "no KV link given (--kv-link-gbps)"
    gbps, latency, per = given
    how = "KV bytes per token given"
    if per is None:
        per, how = source_kv_bytes(run, precision)
        if per is None:
            return None, f"{how}: give --kv-bytes-per-token"
    try:
        return KvLink(gbps, latency, per, f"{gbps:g} GB/s, {latency:g} ms a transfer; {how}"), ""
    except EngineError as exc:
        return None, str(exc)


MAX_SPLIT_SIMULATIONS = 200  # one disaggregated option's search: each is a whole simulation


@dataclass
class SplitFound:
    """A split search: the fewest replicas in all (prefill, decode) meeting every SLO, the result there (or at
    the last split tried), the simulations run, and why none was found."""

    split: tuple[int, int] | None
    result: LlmResult
    simulations: int
    why: str | None


def split_search(
    sc: Scenario,
    run: Source,
    model: StepModel,
    cfg: EngineConfig,
    requests: int,
    router: str | None,
    link: KvLink,
    max_replicas: int,
) -> SplitFound:
    """For each prefill count P from 1, the fewest decode replicas that meet every SLO (gallop and bisect, as for
    one pool); stop once P alone reaches the best total found. Ties at the same total: the split whose worst SLO
    is furthest inside its threshold."""
    route = router or default_router(cfg.prefix_caching)
    done: dict[tuple[int, int], LlmResult] = {}

    def sim(p: int, d: int) -> LlmResult:
        if (p, d) not in done:
            if len(done) >= MAX_SPLIT_SIMULATIONS:
                raise _SplitBudget
            done[(p, d)] = run_llm_simulation(
                sc, model, cfg, p, route, run, requests, None, None, decode_pool(model, cfg, d, route), link
            )
        return done[(p, d)]

    best: tuple[int, int] | None = None
    last = (1, 1)
    try:
        for p in range(1, max_replicas):
            cap = (sum(best) if best else max_replicas) - p
            if cap < 1:
                break
            found = smallest_passing(
                lambda d, p=p: _verdict(sim(p, d)),  # type: ignore[misc]
                1,
                cap,
            )
            last = (p, found.replicas or max(found.last_failing, 1))
            if found.replicas is not None:
                cand = (p, found.replicas)
                if (
                    best is None
                    or sum(cand) < sum(best)
                    or (sum(cand) == sum(best) and _worst(sim(*cand))[0] < _worst(sim(*best))[0])
                ):
                    best = cand
    except _SplitBudget:
        if best is None:
            return SplitFound(
                None, sim(*last), len(done), f"no split met the SLOs in {MAX_SPLIT_SIMULATIONS} simulations"
            )
    if best is None:
        return SplitFound(
            None, sim(*last), len(done), f"no split of up to {max_replicas} replicas met the SLOs"
        )
    return SplitFound(best, sim(*best), len(done), None)


class _SplitBudget(Exception):
    """The split search ran its simulations."""


def _verdict(r: LlmResult) -> Verdict:
    return Verdict(_meets(r), r.stable, _worst(r)[0] if r.stable else float("inf"), r.utilization)


def _energy_cost(run: Source, r: LlmResult, devices: int, el: Electricity) -> tuple[float | None, str]:
    """Energy a month for a price that does not pay for power (owned hardware), at the facility (x PUE): from
    the run's measured energy per request, or an assumed profile's board power; or why it is missing."""
    if r.energy_j_per_request is not None:
        kwh = r.energy_j_per_request * r.offered_rps * SECONDS_PER_MONTH / 3.6e6 * el.pue
        return kwh * el.usd_per_kwh, (
            f"energy {kwh:,.0f} kWh a month from the measured energy per token (idle power excluded: a lower "
            f"bound) x PUE {el.pue:g} at ${el.usd_per_kwh:g}/kWh"
        )
    watts = run.sheet.board_power_w if isinstance(run, LlmProfile) else None
    if watts is not None:
        kwh = devices * watts * HOURS_PER_MONTH / 1000.0 * el.pue
        return kwh * el.usd_per_kwh, (
            f"ASSUMED energy {kwh:,.0f} kWh a month: {devices} devices at the sheet's board power ({watts:g} W, "
            f"an upper bound) x PUE {el.pue:g} at ${el.usd_per_kwh:g}/kWh"
        )
    return (
        None,
        "energy cost missing: the evidence has no power measurement, so the monthly cost is a lower bound",
    )


S = TypeVar("S", LlmSized, BenchSized)


def _another(sized: S, why: str | None) -> S:
    """An answer from evidence of another model, labelled so in its own field and its warnings."""
    if why is None:
        return sized
    return sized.model_copy(
        update={"another_model": why, "warnings": [f"ANOTHER MODEL: {why}", *sized.warnings]}
    )


def _mean(sc: Scenario, r: LlmResult, which: str) -> float:
    """Mean tokens per request (input or output), from the result's token rates."""
    rate = r.input_tokens_per_s if which == "input" else r.output_tokens_per_s
    return rate / r.throughput_rps if r.throughput_rps > 0 else 0.0


@dataclass(frozen=True)
class LlmTask:
    """One option to size, as a worker process (or a Ray worker) takes it."""

    option: LlmOption
    scenario: Scenario
    book: PriceBook
    pricing: Pricing
    requests: int
    max_replicas: int
    kv_blocks: int | None
    redundancy: Redundancy = field(default_factory=Redundancy)


def size_task(t: LlmTask) -> LlmSized | str:
    """size_option in a worker: the sized option, or why it could not be sized."""
    try:
        run = load_source(t.option.run)
        return size_option(
            t.scenario,
            t.option,
            run,
            t.book,
            t.pricing,
            t.requests,
            t.max_replicas,
            t.kv_blocks,
            t.redundancy,
        )
    except (EngineError, StepModelError, LlmSizingError, LlmProfileError, PriceError) as exc:
        return str(exc)


def size_llm(
    sc: Scenario,
    runs: list[str],
    precisions: list[str] | None,
    max_num_seqs: tuple[int, ...],
    max_num_batched_tokens: tuple[int, ...],
    chunked: tuple[bool, ...],
    book: PriceBook,
    pricing: Pricing,
    requests: int = 3000,
    max_replicas: int = 256,
    kv_blocks: int | None = None,
    benchmarks: tuple[EngineBenchmark, ...] = (),
    jobs: int = 1,
    progress: TaskProgress | None = None,
    redundancy: Redundancy = Redundancy(),
    executor: Executor = "local",
    any_model: bool = False,
    profiles: tuple[str, ...] = (),
    prefix_caching: tuple[bool, ...] = (False,),
    routers: tuple[str | None, ...] = (None,),
    disaggregated: tuple[bool, ...] = (False,),
    kv_link: tuple[float, float, float | None] | None = None,
) -> LlmPlan:
    """Size every option (and every imported benchmark); rank by monthly cost among those meeting the SLOs.

    When the scenario names its model, evidence of another model is left out with the reason, or, with
    `any_model`, kept and labelled "another model" in every option it gives."""
    if sc.llm is None:
        raise LlmSizingError(f"scenario {sc.name} has no llm block: LLM runs size generative requests")
    if not sc.slo:
        raise LlmSizingError(f"scenario {sc.name} has no SLO to size for")
    if not runs and not benchmarks and not profiles:
        raise LlmSizingError("give at least one LLM run, engine benchmark or assumed LLM profile")
    if (
        runs or profiles
    ):  # the work budgets, once and before any worker starts (every option replays these requests)
        try:
            llm_requests(sc, requests)
        except EngineError as exc:
            raise LlmSizingError(str(exc)) from None
    spec = sc.llm.model
    notes: list[str] = []
    other: dict[str, str] = {}  # evidence id -> why it is another model (kept with --any-model)
    keep_benchmarks = []
    for bench in benchmarks:
        why = benchmark_mismatch(spec, bench)
        if why and not any_model:
            notes.append(f"left out: {why} (--any-model uses it, labelled)")
            continue
        if why:
            other[bench.id] = why
        keep_benchmarks.append(bench)
    loaded: list[tuple[str, Source]] = []
    sources: list[tuple[str, Source]] = [(p, load_run_cached(p)) for p in runs]
    sources += [(p, load_llm_profile(p)) for p in profiles]
    for p, run in sources:
        why = profile_mismatch(spec, run) if is_assumed(run) else run_mismatch(spec, run)  # type: ignore[arg-type]
        if why and not any_model:
            notes.append(f"left out: {why} (--any-model uses it, labelled)")
            continue
        if why:
            other[run.id] = why
        loaded.append((p, run))
    if not loaded and not keep_benchmarks:
        raise LlmSizingError("no evidence of the scenario's model: " + "; ".join(notes))
    if "prefix-aware" in routers and True not in prefix_caching:
        raise LlmSizingError("router prefix-aware matches cached prefixes: size it with prefix caching on")
    if "prefix-aware" in routers and False in prefix_caching:
        notes.append(
            "prefix-aware routing is sized with the prefix cache only (it has nothing to match without)"
        )
    from_bench: list[BenchSized] = []
    if keep_benchmarks:
        offered = OfferedLoad.of(sc)  # the scenario drawn once for every benchmark
        from_bench = [  # one answer per curve: every file of one engine, model, hardware and replica shape
            _another(size_from_curve(sc, group, book, pricing, offered), other.get(group[0].id))
            for group in group_benchmarks(keep_benchmarks)
        ]
    sized: list[LlmSized] = []
    tasks: list[LlmTask] = []
    for path, run in loaded:
        if not is_assumed(run) and not run.is_llm:  # type: ignore[union-attr]
            raise LlmSizingError(f"run {run.short_id()} is a batch run: size LLM and batch runs separately")
        have = source_precisions(run)
        for prec in precisions or have:
            if prec not in have:
                what = "assumed profile" if is_assumed(run) else "run"
                notes.append(f"{what} {run.short_id()} has no LLM point at {prec}")
                continue
            links: list[KvLink | None] = [None] if False in disaggregated else []
            if True in disaggregated:
                link, why = _link_for(run, prec, kv_link)
                if link is None:
                    notes.append(f"{run.short_id()} at {prec}: not sized disaggregated: {why}")
                else:
                    links.append(link)
            grid = itertools.product(
                max_num_seqs, max_num_batched_tokens, chunked, prefix_caching, routers, links
            )
            for seqs, tokens, ch, cache, router, lk in grid:
                if router == "prefix-aware" and not cache:  # nothing to match without a cache
                    continue
                opt = LlmOption(path, prec, seqs, tokens, ch, cache, router, lk)
                tasks.append(LlmTask(opt, sc, book, pricing, requests, max_replicas, kv_blocks, redundancy))
    for task, got in zip(tasks, in_workers(size_task, tasks, jobs, progress, executor), strict=True):
        if isinstance(got, str):
            notes.append(f"{load_source(task.option.run).short_id()} {task.option.label}: {got}")
        else:
            sized.append(_another(got, other.get(got.run_id)))
    if not sized and not from_bench:
        raise LlmSizingError("no option could be sized: " + "; ".join(notes))
    met = [o for o in sized if o.meets_slo]
    measured_on = {(o.price_entry or o.device) for o in met if o.source == "measured"}
    outranked = [o for o in met if o.source == "assumed" and (o.price_entry or o.device) in measured_on]
    for o in outranked:  # a measured run of the device always outranks a roofline of it
        notes.append(f"{o.device} ({o.run_id}): a measured run of this device meets the SLOs; it outranks the "
                     "assumed profile, which is listed but not ranked")  # fmt: skip
    met = [o for o in met if o not in outranked]
    priced = sorted(
        (o for o in met if o.monthly_cost_usd is not None), key=lambda o: o.monthly_cost_usd or 0.0
    )
    best: str | None = None
    if priced:
        b = priced[0]
        best = b.label
        spared = (
            f" ({b.replicas} sized, redundancy {b.redundancy})" if b.replicas_deployed != b.replicas else ""
        )
        shape = f" replicas of {b.replica}" if b.devices_per_replica > 1 else ""
        answer = (
            f"{b.replicas_deployed} x {b.device}{shape} at {b.precision}{spared} (max_num_seqs {b.max_num_seqs}, "
            f"{b.max_num_batched_tokens} tokens/step, {'chunked' if b.chunked_prefill else 'whole'} prefill"
            f"{_cache_words(b)}): ${b.monthly_cost_usd:,.0f} a month"
        )
        if b.another_model:
            answer = f"ANOTHER MODEL's evidence: {answer}"
        if b.source == "assumed":
            answer = f"ASSUMED (roofline, not measured): {answer}"
    elif met:
        b = min(met, key=lambda o: o.replicas or 0)
        best = b.label
        answer = f"{b.replicas} x {b.device} at {b.precision} meets the SLOs; no option is priced"
        if b.source == "assumed":
            answer = f"ASSUMED (roofline, not measured): {answer}"
    else:
        answer = "no option meets the SLOs (each option says why)"
    if not met and (bench_met := [b for b in from_bench if b.meets_slo]):
        b2 = min(
            bench_met, key=lambda b: (b.monthly_cost_usd is None, b.monthly_cost_usd or 0.0, b.replicas or 0)
        )
        cost = (
            f": ${b2.monthly_cost_usd:,.0f} a month" if b2.monthly_cost_usd is not None else " (not priced)"
        )
        shape = f" (replicas of {b2.replica}: {b2.devices} devices)" if b2.devices_per_replica > 1 else ""
        answer = f"{b2.replicas} x {b2.hardware}{shape}{cost}, from {b2.evidence} (capacity {b2.capacity_rps:.3g} req/s)"
        best = f"benchmark:{b2.benchmark_id}"
    return LlmPlan(
        scenario=sc.name,
        slos=[s.label() for s in sc.slo],
        pricing=pricing,
        options=sized,
        answer=answer,
        notes=notes,
        from_benchmarks=from_bench,
        best=best,
    )
