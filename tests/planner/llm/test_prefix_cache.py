"""Prefix caching: the block pool against a plain restatement of vLLM's rules, and the engine model with it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planner.llm.engine import EngineConfig, LlmRequests, simulate
from planner.llm.prefix_cache import PrefixCache
from tests.planner.llm.test_llm_engine import synthetic_model


class PlainPool:
    """The same rules written the plain way: lists scanned front to back, no indexes."""

    def __init__(self, blocks: int, size: int) -> None:
        self.size = size
        self.ref = [0] * blocks
        self.key: list[object] = [None] * blocks
        self.queue = list(range(blocks))
        self.hits = self.evicted = 0

    def lookup(self, keys: list[int], prompt: int) -> list[int]:
        out = []
        for key in keys[: (prompt - 1) // self.size]:
            holders = [b for b in range(len(self.key)) if self.key[b] == key]
            if not holders:
                break
            out.append(min(holders, key=self._named_at))
        self.hits += len(out) * self.size
        return out

    def _named_at(self, b: int) -> int:
        return self.order.index(b)

    def admit(self, keys: list[int], prompt: int) -> list[int]:
        hits = self.lookup(keys, prompt)
        need = -(-prompt // self.size) - len(hits)
        if need + sum(1 for b in hits if self.ref[b] == 0) > len(self.queue):
            return []
        for b in hits:
            if self.ref[b] == 0:
                self.queue.remove(b)
            self.ref[b] += 1
        new = []
        for _ in range(need):
            b = self.queue.pop(0)
            if self.key[b] is not None:
                self.key[b] = None
                self.evicted += 1
                self.order.remove(b)
            self.ref[b] = 1
            new.append(b)
        blocks = hits + new
        for j in range(min(len(keys), prompt // self.size)):
            if self.key[blocks[j]] is None and blocks[j] not in hits:
                self.key[blocks[j]] = keys[j]
                self.order.append(blocks[j])
        return blocks

    def free(self, blocks: list[int]) -> None:
        for b in reversed(blocks):
            self.ref[b] -= 1
            if self.ref[b] == 0:
                self.queue.append(b)

    order: list[int]


def _fast_admit(pool: PrefixCache, keys: list[int], prompt: int) -> list[int]:
    hits = pool.lookup(keys, prompt)
    need = -(-prompt // pool.block_size) - len(hits)
    if need + pool.evictable(hits) > pool.num_free:
        return []
    pool.touch(hits)
    blocks = hits + pool.allocate(need)
    for j in range(len(hits), min(len(keys), prompt // pool.block_size)):
        pool.register(blocks[j], keys[j])
    return blocks


prefix_families = st.lists(
    st.tuples(st.integers(0, 3), st.integers(1, 6), st.integers(1, 15), st.booleans()),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(prefix_families, st.integers(4, 24))
def test_the_pool_follows_the_plain_restatement_of_vllms_rules(ops: list, blocks: int) -> None:
    size = 4
    fast, plain = PrefixCache(blocks, size), PlainPool(blocks, size)
    plain.order = []
    held: list[tuple[list[int], list[int]]] = []
    for family, shared, extra, release in ops:
        # family f shares its first `shared` blocks with every other request of f (keys chain by construction)
        keys = [hash((family, j)) for j in range(shared)] + [
            hash((family, shared, extra, len(held), j)) for j in range(extra)
        ]
        prompt = len(keys) * size + 1  # one more token than the full blocks hold: every block may be reused
        a, b = _fast_admit(fast, keys, prompt), plain.admit(keys, prompt)
        assert (len(a) > 0) == (len(b) > 0)
        assert fast.counts.hit_tokens == plain.hits and fast.counts.evicted_blocks == plain.evicted
        assert fast.num_free == len(plain.queue)
        if a:
            held.append((a, b))
        if release and held:
            x, y = held.pop(0)
            fast.free(x)
            plain.free(y)
            assert fast.num_free == len(plain.queue)


def test_a_prompt_whose_every_block_is_cached_still_computes_its_last_block() -> None:
    pool = PrefixCache(16, 4)
    keys = [1, 2, 3]
    first = _fast_admit(pool, keys, 12)
    pool.free(first)
    assert pool.lookup(keys, 12) == first[:2]  # (12 - 1) // 4 = 2 blocks at most
    assert len(pool.lookup(keys, 13)) == 3  # a 13th token: all three full blocks reusable


def _shared_prefix_requests(n: int, seed: int, size: int) -> tuple[LlmRequests, int]:
    """n requests, each a shared system prompt of a random number of blocks from one of 3 families, then its
    own blocks; returns the requests and the prompt tokens that a cache of ample size must find cached."""
    rng = np.random.default_rng(seed)
    keys, prompts, expected = [], [], 0
    seen: list[list[int]] = []
    for i in range(n):
        fam, shared, own = int(rng.integers(0, 3)), int(rng.integers(0, 6)), int(rng.integers(1, 4))
        k = [1000 * fam + j for j in range(shared)] + [10**6 * (i + 1) + j for j in range(own)]
        prompt = len(k) * size + int(rng.integers(1, size))
        lcp = max((next((j for j, (a, b) in enumerate(zip(k, s, strict=False)) if a != b), min(len(k), len(s)))
                   for s in seen), default=0)  # fmt: skip
        expected += min(lcp, (prompt - 1) // size) * size
        seen.append(k)
        keys.append(tuple(k))
        prompts.append(prompt)
    reqs = LlmRequests(
        np.arange(n) * 10.0,
        np.array(prompts),
        np.full(n, 4),
        prefix_ids=tuple(keys),
        prefix_block_tokens=size,
    )  # 10 s apart: each request runs alone
    return reqs, expected


def test_the_engine_reuses_exactly_the_blocks_shared_by_construction() -> None:
    size = 16
    reqs, expected = _shared_prefix_requests(60, 1, size)
    on = EngineConfig(max_num_batched_tokens=4096, block_size=size, kv_blocks=100_000, prefix_caching=True)
    off = EngineConfig(max_num_batched_tokens=4096, block_size=size, kv_blocks=100_000)
    cached, plain = simulate(reqs, synthetic_model(), on), simulate(reqs, synthetic_model(), off)
    assert expected > 0 and cached.prefix_hit_tokens == expected
    assert cached.prefix_queried_tokens == int(reqs.prompt.sum()) and cached.prefix_evicted_blocks == 0
    assert cached.prefill_tokens == plain.prefill_tokens - expected  # only the uncached suffix is computed
    ttft_on, ttft_off = cached.first_s - reqs.arrival_s, plain.first_s - reqs.arrival_s
    assert np.all(ttft_on <= ttft_off + 1e-12) and ttft_on.sum() < ttft_off.sum()


def test_with_nothing_shared_the_cache_changes_no_time() -> None:
    rng = np.random.default_rng(5)
    n = 300
    reqs = LlmRequests(np.cumsum(rng.exponential(0.02, n)), rng.integers(20, 600, n), rng.integers(1, 40, n))
    for kv in (100_000, 60):  # ample, then tight enough to preempt
        base = EngineConfig(max_num_batched_tokens=512, block_size=16, kv_blocks=kv)
        on = EngineConfig(max_num_batched_tokens=512, block_size=16, kv_blocks=kv, prefix_caching=True)
        a, b = (
            simulate(reqs, synthetic_model(spread=0.1), base, 2),
            simulate(reqs, synthetic_model(spread=0.1), on, 2),
        )
        assert np.array_equal(a.first_s, b.first_s) and np.array_equal(a.finish_s, b.finish_s)
        assert np.array_equal(a.preempted, b.preempted) and a.steps == b.steps
        assert b.prefix_hit_tokens == 0
    assert a.preempted.sum() > 0  # the tight case did preempt


def test_engine_blocks_are_named_by_the_trace_blocks_up_to_their_last_token() -> None:
    from planner.llm.engine_cached import engine_block_keys

    # trace blocks of 40 tokens, engine blocks of 16: engine block 2 (tokens 32-47) ends in trace block 1
    a = engine_block_keys([7, 8, 9], 40, 120, 16)
    b = engine_block_keys([7, 5, 9], 40, 120, 16)
    assert len(a) == 7 and a[:2] == b[:2] and a[2] != b[2]  # blocks 0-1 lie in the shared first trace block
    assert engine_block_keys([7], 40, 120, 16) == a[:2]  # past the named blocks: no key, nothing shared
    assert engine_block_keys([7, 8, 9], 40, 120, 16) == a  # the same ids name the same blocks every time


def _families(n: int, seed: int, shared: bool) -> LlmRequests:
    """Poisson traffic; with `shared`, each prompt opens with one of 32 system prompts of 24 blocks (768 blocks in
    all: more than one replica's 400 hold, fewer than four hold) and ends with 2 blocks of its own; else every
    block is its own."""
    rng = np.random.default_rng(seed)
    fam = rng.integers(0, 32, n)
    ids = tuple(
        (*(int(f) * 1000 + j for j in range(24)), 10**6 + 2 * i, 10**6 + 2 * i + 1)
        if shared
        else tuple(10**6 + 26 * i + j for j in range(26))
        for i, f in enumerate(fam)
    )
    return LlmRequests(
        np.cumsum(rng.exponential(0.03, n)),
        np.full(n, 26 * 16 + 5),
        np.full(n, 8),
        prefix_ids=ids,
        prefix_block_tokens=16,
    )


def test_prefix_aware_routing_beats_the_others_on_shared_prefixes_and_is_least_outstanding_without() -> None:
    cfg = EngineConfig(max_num_batched_tokens=1024, block_size=16, kv_blocks=400, prefix_caching=True)
    model = synthetic_model(spread=0.05)
    shared = _families(1500, 2, shared=True)
    runs = {
        r: simulate(shared, model, cfg, 4, r, seed=3)
        for r in ("round-robin", "least-outstanding", "prefix-aware")
    }
    hit = {r: t.prefix_hit_tokens / t.prefix_queried_tokens for r, t in runs.items()}
    ttft = {r: float(np.mean(t.first_s - shared.arrival_s)) for r, t in runs.items()}
    assert hit["prefix-aware"] > 1.2 * max(hit["round-robin"], hit["least-outstanding"])
    assert ttft["prefix-aware"] < min(ttft["round-robin"], ttft["least-outstanding"])
    # nothing shared: the longest cached prefix is 0 everywhere, and the rule is least-outstanding's
    distinct = _families(600, 4, shared=False)
    a = simulate(distinct, model, cfg, 4, "prefix-aware", seed=3)
    b = simulate(distinct, model, cfg, 4, "least-outstanding", seed=3)
    assert np.array_equal(a.first_s, b.first_s) and np.array_equal(a.finish_s, b.finish_s)
    assert a.prefix_hit_tokens == 0


def test_prefix_aware_routing_without_a_cache_is_refused() -> None:
    reqs = _families(10, 1, shared=True)
    with pytest.raises(ValueError, match="needs prefix caching on"):
        simulate(reqs, synthetic_model(), EngineConfig(block_size=16), 2, "prefix-aware")


def test_a_measured_cost_of_attending_over_the_cache_lengthens_exactly_the_cached_prefills() -> None:
    """Four requests, one at a time, sharing 20 blocks of 16 tokens and each with one block of its own: with a
    cost per (computed x cached) token the first (nothing cached) is unchanged and each later one's TTFT grows by
    exactly that cost x 16 computed x 320 cached tokens; without the cache nothing changes."""
    ids = tuple((*tuple(range(20)), 100 + i) for i in range(4))
    reqs = LlmRequests(np.arange(4.0), np.full(4, 21 * 16), np.full(4, 3), ids, 16)
    cfg = EngineConfig(kv_blocks=1000, prefix_caching=True)
    plain, costly = synthetic_model(), synthetic_model()
    costly.cached_attend_ms = 1e-3
    a, b = simulate(reqs, plain, cfg, seed=3), simulate(reqs, costly, cfg, seed=3)
    grew = (b.first_s - a.first_s) * 1000.0
    assert grew == pytest.approx([0.0, 1e-3 * 16 * 320, 1e-3 * 16 * 320, 1e-3 * 16 * 320], abs=1e-9)
    off = EngineConfig(kv_blocks=1000)
    assert np.array_equal(
        simulate(reqs, plain, off, seed=3).first_s, simulate(reqs, costly, off, seed=3).first_s
    )


def test_a_pool_of_billions_of_blocks_costs_what_it_holds() -> None:
    """--kv-blocks 2000000000 with the cache on: the pool is a counter until used (it was a list a block, 16 GB
    before the first request), and behaves as a small pool does while it is not full."""
    import tracemalloc

    tracemalloc.start()
    big = PrefixCache(2_000_000_000, 16)
    got = big.allocate(5)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert size < 1_000_000 and got == [0, 1, 2, 3, 4] and big.num_free == 2_000_000_000 - 5
    small = PrefixCache(10, 16)
    assert small.allocate(5) == got
    for pool in (big, small):
        pool.register(1, "k")
        pool.free(got)
    assert big.lookup(["k"], 100) == small.lookup(["k"], 100) == [1]  # freed, still cached
    assert big.allocate(3) == [5, 6, 7] and small.allocate(3) == [5, 6, 7]  # never-used blocks first
