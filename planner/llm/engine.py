"""Replaying requests through replicas of the engine (planner/llm/replica.py): the work budgets, routing, open-
and closed-loop simulation, and the KV blocks a run implies.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import simpy

from measure.run import Run, Unavailable
from planner.llm.autoscale import Autoscaler
from planner.llm.engine_cached import CachedSeq, CachingReplica, cached_seq_maker
from planner.llm.replica import (
    MAX_SIM_STEPS,
    EngineConfig,
    EngineError,
    Replica,
    Seq,
    Trace,
    WorkBudgetError,
)
from planner.llm.steps import StepModel
from planner.serving.routing import LLM_ROUTERS, PREFIX_LOAD_GUARD, RouterError, router_for

__all__ = [
    "MAX_SIM_OUTPUT_TOKENS", "MAX_SIM_STEPS", "MAX_SIM_TOKENS", "EngineConfig", "EngineError", "LlmRequests",
    "Replica", "Seq", "Trace", "WorkBudgetError", "check_work", "kv_blocks_from_run", "replay_closed_loop",
    "route", "simulate",
]  # fmt: skip

LlmRouter = Literal["round-robin", "least-outstanding", "least-kv", "prefix-aware"]


def kv_blocks_from_run(run: Run, precision: str, block_size: int, given: int | None) -> tuple[int, str]:
    """KV blocks per replica: as given, or the run's KV tokens that fit at its memory fraction / block size;
    and where the figure came from."""
    if given is not None:
        return given, "given (--kv-blocks)"
    mem = next((m for m in run.llm.memory if m.precision == precision), None) if run.llm else None
    if mem is None or isinstance(mem.kv_tokens_fit, Unavailable):
        raise EngineError(
            f"run {run.short_id()} does not say how many KV tokens fit at {precision}: "
            "give the KV blocks per replica (--kv-blocks)"
        )
    return max(
        1, mem.kv_tokens_fit // block_size
    ), f"the run's KV tokens that fit ({mem.kv_tokens_fit_method})"


# Budgets on the work of one simulation, whatever its request count and lengths each passed on their own: a
# 150-byte scenario of 3,000 requests of 1,048,576 output tokens is 3 billion decode-token events. Every output
# token is a scheduled decode and an ITL entry (8 bytes); a prompt token is prefill arithmetic in chunks.
MAX_SIM_OUTPUT_TOKENS: Final = 10_000_000  # ~2x an hour of Azure or Mooncake chat (10.8M took 19 s here)
MAX_SIM_TOKENS: Final = 500_000_000  # prompt + output; an hour of Mooncake conversation is ~150M


def check_work(requests: int, prompt_tokens: int, output_tokens: int, what: str = "the simulation") -> None:
    """Refuse, before anything is allocated or simulated, work past the token budgets; names the budget."""
    if output_tokens > MAX_SIM_OUTPUT_TOKENS:
        raise WorkBudgetError(
            f"{what}: {requests:,} requests with {output_tokens:,} output tokens in all, over the budget of "
            f"{MAX_SIM_OUTPUT_TOKENS:,} output tokens a simulation (fewer requests or shorter outputs)"
        )
    if prompt_tokens + output_tokens > MAX_SIM_TOKENS:
        raise WorkBudgetError(
            f"{what}: {requests:,} requests with {prompt_tokens + output_tokens:,} tokens in all, over the "
            f"budget of {MAX_SIM_TOKENS:,} prompt and output tokens a simulation"
        )


@dataclass(frozen=True)
class LlmRequests:
    """Arrival times (s, sorted) and token lengths of the requests to replay; within the work budgets."""

    arrival_s: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    # per request, the ids of its prompt's blocks of `prefix_block_tokens` tokens (a Mooncake trace's hash_ids:
    # equal ids, equal block of tokens): what prefix caching matches on; None: no prefix structure known
    prefix_ids: tuple[tuple[int, ...], ...] | None = None
    prefix_block_tokens: int = 512

    def __post_init__(self) -> None:
        n = self.arrival_s.size
        if self.prompt.size != n or self.output.size != n:
            raise EngineError("arrival, prompt and output arrays must have the same length")
        if self.prefix_ids is not None and len(self.prefix_ids) != n:
            raise EngineError("prefix block ids must be given for every request or for none")
        if self.prefix_block_tokens < 1:
            raise EngineError(f"prefix blocks must hold at least 1 token, got {self.prefix_block_tokens}")
        if n and (self.prompt.min() < 1 or self.output.min() < 1):
            raise EngineError("every request needs at least 1 prompt token and 1 output token")
        check_work(n, int(self.prompt.sum(dtype=np.int64)), int(self.output.sum(dtype=np.int64)))


def check_step_budget(n: int, tokens: int, cfg: EngineConfig, reqs: LlmRequests) -> None:
    """Refuse before simulating work that takes more engine steps than MAX_SIM_STEPS: no step holds more than
    max_num_batched_tokens tokens, and a request's output takes a step a token."""
    fewest = max(-(-tokens // cfg.max_num_batched_tokens), int(reqs.output.max(initial=0)))
    if fewest > MAX_SIM_STEPS:
        raise WorkBudgetError(
            f"{n:,} requests of {tokens:,} tokens at max_num_batched_tokens {cfg.max_num_batched_tokens:,} "
            f"take at least {fewest:,} engine steps, over the budget of {MAX_SIM_STEPS:,}"
        )


def route(kind: str, replicas: list[Replica]) -> Callable[[int, Seq], Replica]:
    """The router: round robin, fewest outstanding requests, lowest KV-cache use (ties: lowest index), or the
    longest cached prefix within a load guard (replicas with a prefix cache only)."""
    try:
        kind = router_for(kind, "LLM")
    except RouterError as exc:
        raise EngineError(str(exc)) from None
    if kind == "round-robin":
        return lambda i, seq: replicas[i % len(replicas)]
    if kind == "least-outstanding":
        return lambda i, seq: min(replicas, key=lambda r: r.outstanding)
    if kind == "least-kv":
        return lambda i, seq: min(replicas, key=lambda r: (r.kv_use, r.outstanding))
    if kind == "prefix-aware":
        if not all(isinstance(r, CachingReplica) for r in replicas):
            raise EngineError("the prefix-aware router needs prefix caching on (--prefix-caching)")
        return lambda i, seq: prefix_route(replicas, seq)  # type: ignore[arg-type]
    raise EngineError(f"unknown LLM router {kind!r}: use {', '.join(LLM_ROUTERS)}")


def prefix_route(replicas: list[CachingReplica], seq: Seq) -> Replica:
    """The replica holding the longest cached run of the request's leading blocks, among those within
    PREFIX_LOAD_GUARD outstanding requests of the least loaded; ties: fewest outstanding, then lowest index."""
    floor = min(r.outstanding for r in replicas) + PREFIX_LOAD_GUARD
    keys = seq.keys if isinstance(seq, CachedSeq) else ()
    best = None
    for r in replicas:
        if r.outstanding > floor:
            continue
        score = (-r.cache.cached_prefix(keys), r.outstanding)
        if best is None or score < best[0]:
            best = (score, r)
    assert best is not None  # the least loaded replica is always a candidate
    return best[1]


def simulate(
    reqs: LlmRequests,
    model: StepModel,
    cfg: EngineConfig,
    replicas: int = 1,
    router: str = "round-robin",
    seed: int = 0,
    record_starts: bool = False,
    concurrency: int | None = None,
    scale_ups: tuple[tuple[float, int], ...] = (),
    autoscaler: Autoscaler | None = None,
    record_itl: bool = True,
) -> Trace:
    """Replay the requests through `replicas` engines; every request runs to its last token.

    With `concurrency`, the arrival times are ignored: that many clients each send their next request (in
    order) the moment one of theirs finishes, from time 0 (closed loop); `Trace.sent_s` says when each left.
    `scale_ups`: (time s, replicas) that join the pool then (started engines: empty, ready), routed to from then.
    `autoscaler`: starts and drains replicas as it reads the pool (planner/llm/autoscale.py; open loop only).
    `record_itl` off: no inter-token gaps kept (TTFT and E2E are; a day's worth of tokens would not fit)."""
    n = reqs.arrival_s.size
    for p, o in zip(reqs.prompt.tolist(), reqs.output.tolist(), strict=True):
        why = cfg.check(p, o)
        if why:
            raise EngineError(why)
    check_step_budget(
        n, int(reqs.prompt.sum(dtype=np.int64)) + int(reqs.output.sum(dtype=np.int64)), cfg, reqs
    )
    env = simpy.Environment()
    trace = Trace(
        np.full(n, np.nan),
        np.full(n, np.nan),
        np.zeros(n, dtype=np.int64),
        record_starts=record_starts,
        record_itl=record_itl,
    )
    rng = np.random.default_rng(seed)
    overhead_s = model.request_overhead_ms / 1000.0
    make: Callable[[int, int, int], Seq] = Seq
    if cfg.prefix_caching:
        trace.cached_tokens = np.zeros(n, dtype=np.int64)
        pool: list[Replica] = [CachingReplica(env, cfg, model, trace, rng) for _ in range(replicas)]
        make = cached_seq_maker(reqs.prefix_ids, reqs.prefix_block_tokens, cfg.block_size)
    else:
        pool = [Replica(env, cfg, model, trace, rng) for _ in range(replicas)]
    pick = route(router, pool)  # the router reads `pool` as it is at each arrival: joined replicas count
    arrivals, prompts, outputs = reqs.arrival_s.tolist(), reqs.prompt.tolist(), reqs.output.tolist()

    every = list(pool)  # a drained replica leaves `pool` but its counters still count

    def spawn() -> Replica:
        every.append((CachingReplica if cfg.prefix_caching else Replica)(env, cfg, model, trace, rng))
        return every[-1]

    def join(at: float, k: int) -> Generator[simpy.Event, None, None]:
        yield env.timeout(at)
        pool.extend(spawn() for _ in range(k))

    if autoscaler is not None:
        if concurrency is not None or scale_ups:
            raise EngineError("an autoscaled pool is replayed open loop, without scheduled scale-ups")
        autoscaler.attach(env, pool, spawn)

    for at, k in scale_ups:
        if not (0 <= at < 1e9 and 0 < k <= 10_000):
            raise EngineError(f"a scale-up adds 1..10000 replicas at 0..1e9 s, got {k} at {at}")
        env.process(join(at, k))

    def source() -> Generator[simpy.Event, None, None]:
        for i in range(n):
            wait = arrivals[i] - env.now
            if wait > 0:
                yield env.timeout(wait)
            seq = make(i, prompts[i], outputs[i])
            pick(i, seq).submit(seq)

    if concurrency is None:
        env.process(source())
    else:
        if concurrency < 1:
            raise EngineError(f"concurrency must be >= 1, got {concurrency}")
        sent = trace.sent_s = np.full(n, np.nan)
        nxt = [0]

        def send_next() -> None:
            i = nxt[0]
            if i >= n:
                return
            nxt[0] += 1
            sent[i] = env.now
            seq = make(i, prompts[i], outputs[i])
            pick(i, seq).submit(seq)

        def after_overhead() -> Generator[simpy.Event, None, None]:
            yield env.timeout(overhead_s)  # the client sees its answer end this much later
            send_next()

        def on_finish() -> None:
            if overhead_s:
                env.process(after_overhead())
            else:
                send_next()

        for r in pool:
            r.on_finish = on_finish
        for _ in range(min(concurrency, n)):
            send_next()
    env.run()
    for r in every:
        r.add_counts(trace)
    if overhead_s:  # latency outside the engine's steps (an engine run's round trip): every request pays it
        trace.first_s += overhead_s
        trace.finish_s += overhead_s
    return trace


def replay_closed_loop(
    model: StepModel,
    cfg: EngineConfig,
    prompt: int,
    output: int,
    n: int,
    concurrency: int,
    seed: int = 0,
    record_starts: bool = False,
) -> Trace:
    """A measured closed-loop setting replayed: n requests of one prompt and output length, `concurrency`
    clients sending from time 0, each its next as its last ends (`Trace.sent_s` says when each left)."""
    reqs = LlmRequests(np.zeros(n), np.full(n, prompt, dtype=np.int64), np.full(n, output, dtype=np.int64))
    return simulate(reqs, model, cfg, 1, "round-robin", seed, record_starts, concurrency)
