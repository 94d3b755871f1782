"""A replica of the engine model with vLLM's automatic prefix caching: the same scheduler (decodes and running
prefills first, then waiting requests FCFS within the token budget, preemption of the newest on a full cache),
with its blocks taken from a PrefixCache. A waiting request's prompt is looked up on admission; only the
uncached suffix is prefilled (and timed); full prompt blocks are registered as they are scheduled.

The cache matches prompt blocks only: a trace names the blocks of each prompt, not of the tokens a request
generates, so an answer's KV is never reused by the next turn here (vLLM can reuse it when the next prompt
repeats the answer token for token)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
import simpy

from planner.llm.prefix_cache import PrefixCache
from planner.llm.replica import EngineConfig, Replica, Seq, Trace
from planner.llm.steps import StepModel


class CachedSeq(Seq):
    """A request with its prompt's block keys, the blocks it holds and how many of them are registered."""

    __slots__ = ("block_ids", "keys", "registered")

    def __init__(self, idx: int, prompt: int, output: int, keys: tuple[Hashable, ...]) -> None:
        super().__init__(idx, prompt, output)
        self.keys = keys
        self.block_ids: list[int] = []
        self.registered = 0


def cached_seq_maker(
    block_keys: Sequence[tuple[Hashable, ...]] | None, block_size: int, prompts: np.ndarray
) -> Callable[[int, int, int], Seq]:
    """How simulate() makes request i: with its keys (checked: at most the prompt's full blocks), or none."""
    if block_keys is not None:
        for i, keys in enumerate(block_keys):
            if len(keys) > int(prompts[i]) // block_size:
                raise ValueError(
                    f"request {i} names {len(keys)} full blocks, more than its {int(prompts[i])} prompt tokens "
                    f"hold at {block_size} tokens a block"
                )
    none: tuple[Hashable, ...] = ()
    return lambda i, p, o: CachedSeq(i, p, o, block_keys[i] if block_keys is not None else none)


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
        for j in range(seq.registered, full):
            self.cache.register(seq.block_ids[j], seq.keys[j])
        seq.registered = max(seq.registered, full)

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
            seq.registered = len(hits)
            self._register(seq, computed + need)
            plan.append((seq, need, False))
            budget -= need
        return plan
