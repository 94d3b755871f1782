"""A replica of the engine model with vLLM's automatic prefix caching: the same scheduler (decodes and running
prefills first, then waiting requests FCFS within the token budget, preemption of the newest on a full cache),
with its blocks taken from a PrefixCache. A waiting request's prompt is looked up on admission; only the
uncached suffix is prefilled (and timed); full prompt blocks are registered as they are scheduled.

The cache matches prompt blocks only: a trace names the blocks of each prompt, not of the tokens a request
generates, so an answer's KV is never reused by the next turn here (vLLM can reuse it when the next prompt
repeats the answer token for token)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import simpy

from planner.llm.prefix_cache import PrefixCache
from planner.llm.replica import EngineConfig, Replica, Seq, Trace
from planner.llm.steps import StepModel


class CachedSeq(Seq):
    """A request with its prompt's block keys, the blocks it holds and how many of them are registered."""

    __slots__ = ("block_ids", "cached", "keys", "registered")

    def __init__(self, idx: int, prompt: int, output: int, keys: tuple[int, ...]) -> None:
        super().__init__(idx, prompt, output)
        self.keys = keys
        self.block_ids: list[int] = []
        self.registered = 0
        self.cached = 0  # prompt tokens found cached when it was (last) admitted


def engine_block_keys(ids: Sequence[int], block_tokens: int, prompt: int, block_size: int) -> tuple[int, ...]:
    """The keys of a prompt's full engine blocks from the ids of its trace blocks: engine block k is named by
    the prefix chain through the trace block holding its last token, and by k (two prompts share it exactly
    when they share every trace block up to there). Tokens past the last named trace block get no key."""
    chain: list[int] = []
    h = 0
    for x in ids:
        h = hash((h, x))  # ints and tuples of ints hash the same in every process
        chain.append(h)
    keys = []
    for k in range(prompt // block_size):
        j = ((k + 1) * block_size - 1) // block_tokens
        if j >= len(chain):
            break
        keys.append(hash((chain[j], k)))
    return tuple(keys)


def cached_seq_maker(
    prefix_ids: Sequence[tuple[int, ...]] | None, block_tokens: int, block_size: int
) -> Callable[[int, int, int], Seq]:
    """How simulate() makes request i: with its engine block keys, computed when it is sent (so that only the
    requests alive hold keys), or with none."""
    if prefix_ids is None:
        return lambda i, p, o: CachedSeq(i, p, o, ())
    return lambda i, p, o: CachedSeq(i, p, o, engine_block_keys(prefix_ids[i], block_tokens, p, block_size))


class CachingReplica(Replica):
    """An engine replica whose KV blocks are a PrefixCache (the base replica's `free` count is not used)."""

    def __init__(
        self,
        env: simpy.Environment,
        cfg: EngineConfig,
        model: StepModel,
        trace: Trace,
        rng: np.random.Generator,
    ) -> None:
        super().__init__(env, cfg, model, trace, rng)
        self.cache = PrefixCache(cfg.kv_blocks, cfg.block_size)
        self.attend_ms = model.cached_attend_ms

    def cached_attention(self, plan: list[tuple[Seq, int, bool]]) -> int:
        return sum(n * s.cached for s, n, d in plan if not d and isinstance(s, CachedSeq) and s.cached)

    @property
    def kv_use(self) -> float:  # cached blocks nobody holds count as free, as in vLLM's usage gauge
        return 1.0 - self.cache.num_free / self.cfg.kv_blocks

    def add_counts(self, trace: Trace) -> None:
        c = self.cache.counts
        trace.prefix_queried_tokens += c.queried_tokens
        trace.prefix_hit_tokens += c.hit_tokens
        trace.prefix_evicted_blocks += c.evicted_blocks

    def _register(self, seq: CachedSeq, upto_tokens: int) -> None:
        full = min(min(upto_tokens, seq.prompt) // self.cfg.block_size, len(seq.keys))
        if full > seq.registered:
            register, ids, keys = self.cache.register, seq.block_ids, seq.keys
            for j in range(seq.registered, full):
                register(ids[j], keys[j])
            seq.registered = full

    def _release(self, seq: Seq) -> None:
        assert isinstance(seq, CachedSeq)
        self.cache.free(seq.block_ids)
        seq.block_ids = []

    def _preempt(self, victim: Seq) -> None:
        assert isinstance(victim, CachedSeq)
        self.running.remove(victim)
        self.cache.free(victim.block_ids)
        victim.block_ids = []
        victim.registered = 0
        victim.cached = 0
        victim.computed = 0
        victim.target = victim.prompt + victim.generated
        self.waiting.appendleft(victim)
        self.trace.preempted[victim.idx] += 1

    def schedule(self) -> list[tuple[Seq, int, bool]]:
        cfg, cache, size = self.cfg, self.cache, self.cfg.block_size
        budget = cfg.max_num_batched_tokens
        plan: list[tuple[Seq, int, bool]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            assert isinstance(seq, CachedSeq)
            decoding = seq.computed >= seq.target
            need = 1 if decoding else min(seq.target - seq.computed, budget)
            extra = self._blocks_for(seq.computed + need) - len(seq.block_ids)
            while extra > cache.num_free:
                victim = self.running[-1]
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            if seq not in self.running:
                break
            if extra > 0:
                seq.block_ids += cache.allocate(extra)
            if not decoding:  # a decode token is no prompt token: nothing new to name
                self._register(seq, seq.computed + need)
            plan.append((seq, need, decoding))
            budget -= need
            i += 1
        while self.waiting and budget > 0 and len(self.running) < cfg.max_num_seqs and not preempted:
            seq = self.waiting[0]
            assert isinstance(seq, CachedSeq)
            hits = cache.lookup(seq.keys, seq.target)  # counted on every attempt, as vLLM counts its queries
            computed = len(hits) * size
            need = seq.target - computed
            if need > budget:
                if not cfg.chunked_prefill:
                    break
                need = budget
            new = self._blocks_for(computed + need) - len(hits)
            if new + cache.evictable(hits) > cache.num_free:
                break
            self.waiting.popleft()
            self.running.append(seq)
            cache.touch(hits)
            seq.block_ids = hits + cache.allocate(new)
            seq.computed = computed
            seq.cached = computed
            seq.registered = len(hits)
            if self.trace.cached_tokens is not None:
                self.trace.cached_tokens[seq.idx] = computed
            self._register(seq, computed + need)
            plan.append((seq, need, False))
            budget -= need
        return plan
