"""One sizing request for batch and generative scenarios: the scenario decides the kind, here, once.

The CLI and the app fill the same object. A value left as None was not given and the kind's default applies;
a value given for the other kind is refused with one line naming it (never dropped), and every value is
checked against its bounds before any simulation starts. `answer` sizes the request: `make_plan` for batch
scenarios, `size_llm` for generative ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from planner.evidence.engine_benchmark import EngineBenchmark
from planner.fleet.levels import SIZING_REQUESTS
from planner.fleet.options import SizingError
from planner.fleet.plan import Plan, Question, make_plan
from planner.fleet.prices import PRICINGS, PriceBook
from planner.fleet.ranking import RANK_BY
from planner.fleet.redundancy import Redundancy
from planner.fleet.sizing import MAX_REPLICAS
from planner.llm.sizing import DEFAULT_BATCHED_TOKENS, DEFAULT_SEQS, LlmPlan, size_llm
from planner.serving.routing import RouterError, router_for
from planner.traffic.scenario import Scenario
from planner.workers import Executor, TaskProgress

LLM_SIZING_REQUESTS = 3000  # per replica count: an LLM request is many engine steps
BATCH_REQUESTS = (1_000, 2_000_000)  # arrivals per steady level
LLM_REQUESTS = (100, 1_000_000)  # requests per replica count
BATCH_ONLY = (
    "router",
    "rank_by",
    "max_batches",
    "max_delays_ms",
    "service_scale",
    "exclude_throttled",
    "full_length",
)
GENERATIVE_ONLY = (
    "max_num_seqs",
    "max_num_batched_tokens",
    "chunked_prefill",
    "prefix_caching",
    "llm_routers",
    "disaggregated",
    "kv_link_gbps",
    "kv_link_latency_ms",
    "kv_bytes_per_token",
    "kv_blocks",
    "benchmarks",
    "any_model",
)


@dataclass(frozen=True)
class SizingRequest:
    """What a front end asks: shared fields, then each kind's own (None or empty: not given)."""

    scenario: Scenario
    runs: tuple[str, ...] = ()
    profiles: tuple[str, ...] = ()
    precisions: tuple[str, ...] | None = None
    pricing: str = "on_demand"
    redundancy: Redundancy = field(default_factory=Redundancy)
    max_replicas: int = MAX_REPLICAS
    requests: int | None = None
    # batch serving
    router: str | None = None
    rank_by: str | None = None
    max_batches: tuple[int, ...] | None = None
    max_delays_ms: tuple[float, ...] | None = None
    service_scale: float | None = None
    exclude_throttled: bool = False
    full_length: bool = False
    # generative serving
    max_num_seqs: tuple[int, ...] | None = None
    max_num_batched_tokens: tuple[int, ...] | None = None
    chunked_prefill: tuple[bool, ...] | None = None
    prefix_caching: tuple[bool, ...] | None = None
    llm_routers: tuple[str, ...] | None = None  # compared side by side (default: by the cache)
    disaggregated: tuple[bool, ...] | None = None  # prefill and decode pools, the split searched
    kv_link_gbps: float | None = None
    kv_link_latency_ms: float | None = None
    kv_bytes_per_token: float | None = None
    kv_blocks: int | None = None
    benchmarks: tuple[EngineBenchmark, ...] = ()
    any_model: bool = False  # keep evidence of another model than the scenario names, labelled so

    @property
    def generative(self) -> bool:
        """A scenario with an `llm` block asks for generative (LLM) serving; any other, batch serving."""
        return self.scenario.llm is not None

    def given(self, name: str) -> bool:
        value = getattr(self, name)
        return value not in (None, False, ())

    def check(self, names: Mapping[str, str] | None = None) -> None:
        """Raise SizingError with one line for the first problem: an option of the other kind (named as the
        front end calls it, e.g. `--router`), or a value out of its bounds."""
        names = names or {}
        other = BATCH_ONLY if self.generative else GENERATIVE_ONLY
        wrong = [names.get(f, f) for f in other if self.given(f)]
        if wrong:  # an option that does not apply is refused, never silently dropped
            kind = "a generative (LLM) scenario" if self.generative else "a batch scenario"
            verb = "does" if len(wrong) == 1 else "do"
            raise SizingError(f"{', '.join(wrong)} {verb} not apply to {kind}: {self.scenario.name}")
        label = lambda f: names.get(f, f)  # noqa: E731
        if self.pricing not in PRICINGS:
            raise SizingError(f"unknown pricing {self.pricing!r}: use {', '.join(PRICINGS)}")
        if not 1 <= self.max_replicas <= 10_000:
            raise SizingError(f"{label('max_replicas')} must be in 1..10000, got {self.max_replicas}")
        lo, hi = LLM_REQUESTS if self.generative else BATCH_REQUESTS
        if self.requests is not None and not lo <= self.requests <= hi:
            kind = " for a generative scenario" if self.generative else ""
            raise SizingError(f"{label('requests')} must be in {lo}..{hi}{kind}, got {self.requests}")
        if self.generative:
            self._check_generative(label)
        else:
            self._check_batch(label)

    def _check_batch(self, label: Any) -> None:
        if not self.runs and not self.profiles:
            raise SizingError(f"give at least one {label('runs')} or {label('profiles')} file")
        try:
            router_for(self.router or "central", "batch")
        except RouterError as exc:
            raise SizingError(str(exc)) from None
        if self.rank_by is not None and self.rank_by not in RANK_BY:
            raise SizingError(f"unknown {label('rank_by')} {self.rank_by!r}: use {', '.join(RANK_BY)}")
        if self.service_scale is not None and not 0.1 <= self.service_scale <= 10:
            raise SizingError(f"{label('service_scale')} must be in 0.1..10, got {self.service_scale:g}")
        if self.max_batches and min(self.max_batches) < 1:
            raise SizingError(f"{label('max_batches')} values must be >= 1")
        if self.max_delays_ms and min(self.max_delays_ms) < 0:
            raise SizingError(f"{label('max_delays_ms')} values must be >= 0")

    def _check_generative(self, label: Any) -> None:
        from planner.llm.roofline import is_llm_profile

        for p in self.profiles:
            if not is_llm_profile(p):
                raise SizingError(
                    f"{label('profiles')} {p}: not an assumed LLM profile (kind: assumed-llm-profile); a batch "
                    "profile describes batch serving"
                )
        for f in ("max_num_seqs", "max_num_batched_tokens"):
            values = getattr(self, f)
            if values is not None and (not values or min(values) < 1):
                raise SizingError(f"{label(f)} values must be >= 1")
        if self.kv_blocks is not None and self.kv_blocks < 1:
            raise SizingError(f"{label('kv_blocks')} must be >= 1, got {self.kv_blocks}")
        split = True in (self.disaggregated or ())
        link_given = [
            f for f in ("kv_link_gbps", "kv_link_latency_ms", "kv_bytes_per_token") if self.given(f)
        ]
        if link_given and not split:
            raise SizingError(
                f"{', '.join(label(f) for f in link_given)} describe(s) disaggregated pools: give "
                f"{label('disaggregated')} on (or on,off)"
            )
        if split and self.kv_link_gbps is None:
            raise SizingError(
                f"{label('disaggregated')} on needs the KV link between the pools: {label('kv_link_gbps')}"
            )
        for r in self.llm_routers or ():
            try:
                router_for(r, "LLM")
            except RouterError as exc:
                raise SizingError(f"{label('llm_routers')}: {exc}") from None
        if "prefix-aware" in [router_for(r, "LLM") for r in self.llm_routers or ()] and True not in (
            self.prefix_caching or (False,)
        ):
            raise SizingError(
                f"{label('llm_routers')} prefix-aware matches cached prefixes: give {label('prefix_caching')} on "
                "(or on,off)"
            )

    def batch_question(self) -> Question:
        """The batch sizing question, defaults filled in."""
        return Question(
            scenario=self.scenario,
            runs=self.runs,
            profiles=self.profiles,
            precisions=self.precisions,
            max_batches=self.max_batches,
            max_delays_ms=self.max_delays_ms,
            router=router_for(self.router or "central", "batch"),  # type: ignore[arg-type]
            pricing=self.pricing,  # type: ignore[arg-type]
            rank_by=self.rank_by or "monthly_cost",  # type: ignore[arg-type]
            redundancy=self.redundancy,
            sizing_requests=SIZING_REQUESTS if self.requests is None else self.requests,
            max_replicas=self.max_replicas,
            exclude_throttled=self.exclude_throttled,
            service_scale=1.0 if self.service_scale is None else self.service_scale,
            early_stop=not self.full_length,
        )


def answer(
    req: SizingRequest,
    book: PriceBook,
    jobs: int = 1,
    progress: TaskProgress | None = None,
    executor: Executor = "local",
) -> Plan | LlmPlan:
    """Size the request by its kind; every value is checked first (SizingError, one line)."""
    req.check()
    if not req.generative:
        return make_plan(req.batch_question(), book, jobs, progress, executor)
    return size_llm(
        req.scenario,
        list(req.runs),
        list(req.precisions) if req.precisions else None,
        req.max_num_seqs or DEFAULT_SEQS,
        req.max_num_batched_tokens or DEFAULT_BATCHED_TOKENS,
        req.chunked_prefill or (True,),
        book,
        req.pricing,  # type: ignore[arg-type]
        requests=LLM_SIZING_REQUESTS if req.requests is None else req.requests,
        max_replicas=req.max_replicas,
        kv_blocks=req.kv_blocks,
        benchmarks=req.benchmarks,
        jobs=jobs,
        progress=progress,
        redundancy=req.redundancy,
        executor=executor,
        any_model=req.any_model,
        profiles=req.profiles,
        prefix_caching=req.prefix_caching or (False,),
        routers=tuple(dict.fromkeys(router_for(r, "LLM") for r in req.llm_routers))
        if req.llm_routers
        else (None,),
        disaggregated=req.disaggregated or (False,),
        kv_link=(req.kv_link_gbps, req.kv_link_latency_ms or 0.0, req.kv_bytes_per_token)
        if req.kv_link_gbps is not None
        else None,
    )
