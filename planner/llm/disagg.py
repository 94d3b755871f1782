"""Disaggregated prefill and decode: a prefill pool and a decode pool, each of its own replica shape, knobs and
router, with each request's KV sent from one to the other.

A request is routed to a prefill replica and prefilled there as a one-token request (vLLM's P/D proxies ask
the prefill instance for max_tokens 1); when its prefill ends, its KV is sent over that replica's link (one transfer at a time, first come first served: KV bytes / bandwidth + a fixed latency; the
bytes from the model shape and precision, or stated). The decode pool's router then picks a replica, which
admits the request with every prompt token but the last already computed (the transferred KV), computes that
one token to produce the first output token, as vLLM's KV connectors do, and decodes the rest. TTFT therefore
holds the prefill, the link and the decode replica's queue and first step. A preempted request on the decode
side is recomputed there, as vLLM does.

The prefill side holds a request's blocks until its transfer has ended, as vLLM's NIXL and Mooncake connectors
do (`request_finished` delays the free until the decode side has read them): a slow link, or a queue on it,
takes KV-cache room from the prefills behind it, and a prefill replica whose waiting request does not fit
waits for a transfer to end. The prefill pool may run vLLM's prefix cache (and prefix-aware routing, as
llm-d routes to prefill pods): only a prompt's uncached suffix is prefilled, and the whole prompt's KV is sent.
One pool (no decode pool) is the aggregated engine: `simulate` itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, replace

import numpy as np
import simpy

from planner.llm.engine import LlmRequests, check_step_budget, route, simulate
from planner.llm.engine_cached import CachingReplica, cached_seq_maker
from planner.llm.replica import EngineConfig, EngineError, Replica, Seq, Trace
from planner.llm.steps import StepModel

MAX_LINK_GB_PER_S = 10_000.0  # beyond any interconnect shipped (NVLink 5 is 1.8 TB/s a GPU)


@dataclass(frozen=True)
class KvLink:
    """How a prefill replica sends a request's KV to the decode pool."""

    gb_per_s: float  # 1e9 bytes a second, one transfer at a time per prefill replica
    latency_ms: float  # fixed per transfer (connection, handshake, the proxy's hop)
    kv_bytes_per_token: float  # of the whole model at its precision (every layer's K and V)
    source: str  # how these are known: measured, the model shape, or stated

    def __post_init__(self) -> None:
        if not 0 < self.gb_per_s <= MAX_LINK_GB_PER_S or not math.isfinite(self.gb_per_s):
            raise EngineError(
                f"link bandwidth must be in (0, {MAX_LINK_GB_PER_S:g}] GB/s, got {self.gb_per_s}"
            )
        if not 0 <= self.latency_ms <= 60_000 or not math.isfinite(self.latency_ms):
            raise EngineError(f"link latency must be in 0..60000 ms, got {self.latency_ms}")
        if not 0 < self.kv_bytes_per_token <= 1e9 or not math.isfinite(self.kv_bytes_per_token):
            raise EngineError(f"KV bytes per token must be in (0, 1e9], got {self.kv_bytes_per_token}")

    def seconds(self, tokens: int) -> float:
        """Time on the link for a prompt's KV."""
        return self.latency_ms / 1000.0 + tokens * self.kv_bytes_per_token / (self.gb_per_s * 1e9)


@dataclass(frozen=True)
class Pool:
    """One pool: its step times, knobs, replica count and router."""

    model: StepModel
    cfg: EngineConfig
    replicas: int
    router: str = "least-outstanding"


def decode_pool(model: StepModel, cfg: EngineConfig, replicas: int, router: str) -> Pool:
    """The decode pool of an option's shape: no prefix cache (the prefill pool's finds the prefixes), routed
    least-outstanding where the option routes by prefix."""
    return Pool(
        model,
        replace(cfg, prefix_caching=False),
        replicas,
        "least-outstanding" if router == "prefix-aware" else router,
    )


@dataclass
class PdTrace:
    """A disaggregated run: what the client saw per request (`trace`: first token from the decode side, finish,
    inter-token gaps), the prefill pool's own steps (`prefill`: its first_s is when each prefill ended), and the
    seconds each request's KV waited for and spent on its link."""

    trace: Trace
    prefill: Trace | None
    link_s: np.ndarray


class PrefillReplica(Replica):
    """A replica of the prefill pool: a request that has produced its one token hands its KV on, and its blocks
    stay held until the transfer has ended (vLLM's NIXL and Mooncake connectors free them once the decode side
    has read them)."""

    handoff: Callable[[PrefillReplica, Seq], None] | None = None
    _freed: simpy.Event | None = None
    sending = 0  # requests whose KV is on its way out, their blocks held

    def _release(self, seq: Seq) -> None:
        if self.handoff is None:
            super()._release(seq)
            return
        self.sending += 1
        self.handoff(self, seq)

    def transferred(self, seq: Seq) -> None:
        """The decode side has the request's KV: its blocks go back (to the prefix cache, where there is one)."""
        self.sending -= 1
        super()._release(seq)
        if self._freed is not None and not self._freed.triggered:
            self._freed.succeed()

    def stalled(self) -> simpy.Event | None:
        if not self.sending:
            return None
        self._freed = self.env.event()
        return self._freed


class CachingPrefillReplica(PrefillReplica, CachingReplica):
    """A prefill replica with vLLM's prefix cache (the router can send a request where its prefix is)."""


def simulate_pd(
    reqs: LlmRequests, prefill: Pool, decode: Pool | None, link: KvLink | None, seed: int = 0
) -> PdTrace:
    """Replay the requests through a prefill pool and a decode pool; with no decode pool, the aggregated engine
    (`simulate`, unchanged)."""
    if decode is None:
        tr = simulate(reqs, prefill.model, prefill.cfg, prefill.replicas, prefill.router, seed)
        return PdTrace(tr, None, np.zeros(reqs.arrival_s.size))
    if link is None:
        raise EngineError("a decode pool needs the KV link between the pools")
    if decode.cfg.prefix_caching:
        raise EngineError(
            "a decode pool's prefix cache is not modelled (the prefill pool's is): turn it off there"
        )
    n = reqs.arrival_s.size
    prompts, outputs, arrivals = reqs.prompt.tolist(), reqs.output.tolist(), reqs.arrival_s.tolist()
    for p, o in zip(prompts, outputs, strict=True):
        why = prefill.cfg.check(p, 1) or decode.cfg.check(p, o)
        if why:
            raise EngineError(why)
    check_step_budget(n, int(reqs.prompt.sum(dtype=np.int64)), prefill.cfg, reqs)  # the prefill pool's share
    env = simpy.Environment()
    rng_p, rng_d = np.random.default_rng(seed).spawn(2)

    def new_trace() -> Trace:
        return Trace(np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, dtype=np.int64))

    tp, td = new_trace(), new_trace()
    kind: type[PrefillReplica] = PrefillReplica
    make: Callable[[int, int, int], Seq] = Seq
    if prefill.cfg.prefix_caching:  # the prefill pool's cache: only the uncached suffix is prefilled there
        tp.cached_tokens = np.zeros(n, dtype=np.int64)
        kind = CachingPrefillReplica
        make = cached_seq_maker(reqs.prefix_ids, reqs.prefix_block_tokens, prefill.cfg.block_size)
    p_pool: list[Replica] = [
        kind(env, prefill.cfg, prefill.model, tp, rng_p) for _ in range(prefill.replicas)
    ]
    d_pool = [Replica(env, decode.cfg, decode.model, td, rng_d) for _ in range(decode.replicas)]
    pick_p, pick_d = route(prefill.router, p_pool), route(decode.router, d_pool)
    links = {id(r): simpy.Resource(env, capacity=1) for r in p_pool}
    link_s = np.zeros(n)
    hop_s = prefill.model.request_overhead_ms / 1000.0  # the proxy's round trip to the prefill server

    def send(replica: PrefillReplica, seq: Seq) -> Generator[simpy.Event, None, None]:
        start = env.now
        with links[id(replica)].request() as turn:
            yield turn
            yield env.timeout(hop_s + link.seconds(seq.prompt))
        link_s[seq.idx] = env.now - start
        replica.transferred(seq)
        got = Seq(seq.idx, seq.prompt, outputs[seq.idx])
        got.computed = seq.prompt - 1  # the transferred KV: the last prompt token is computed here
        pick_d(seq.idx, got).submit(got)

    def handoff(replica: PrefillReplica, seq: Seq) -> None:
        env.process(send(replica, seq))

    for r in p_pool:
        assert isinstance(r, PrefillReplica)
        r.handoff = handoff

    def source() -> Generator[simpy.Event, None, None]:
        for i in range(n):
            wait = arrivals[i] - env.now
            if wait > 0:
                yield env.timeout(wait)
            seq = make(i, prompts[i], 1)
            pick_p(i, seq).submit(seq)

    env.process(source())
    env.run()
    for r in p_pool:
        r.add_counts(tp)
    overhead_s = decode.model.request_overhead_ms / 1000.0
    if overhead_s:  # the client's round trip to the decode side, as in the aggregated engine
        td.first_s += overhead_s
        td.finish_s += overhead_s
    return PdTrace(td, tp, link_s)
