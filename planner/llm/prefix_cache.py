"""A replica's KV block pool with automatic prefix caching, by vLLM V1's rules (its block pool and KV cache
manager), at the granularity of the engine's blocks:

- a full block of a prompt is named by a key that stands for its whole prefix chain (equal keys: equal tokens
  from the prompt's start to the block's end), and is registered under that key once its tokens are scheduled;
- on admission the longest run of the prompt's leading keys found in the pool is reused, capped so that at
  least one prompt token is computed (a prompt whose every block hits recomputes its last block);
- a reused block that no running request holds leaves the free queue; its reference count is kept;
- freed blocks join the tail of the free queue, a request's blocks in reverse order (its last block is
  evicted first); new blocks are taken from the head, and a cached block taken there is evicted (its key
  forgotten);
- two requests that compute the same block at once each keep their own copy; a lookup finds either.

Torch-free and independent of SimPy: the engine model calls it; tests hold it to a plain restatement.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


class PrefixCacheError(ValueError):
    """An allocation the pool cannot make (the engine checks free blocks before it asks)."""


@dataclass
class CacheCounts:
    """What the cache did: prompt tokens found cached on admission, tokens looked up, blocks evicted."""

    queried_tokens: int = 0
    hit_tokens: int = 0
    evicted_blocks: int = 0


class PrefixCache:
    """Blocks 0..n-1, their reference counts and keys, the free queue in vLLM's order, the key index."""

    __slots__ = ("block_size", "blocks", "by_key", "counts", "free_queue", "fresh", "key_of", "ref")

    def __init__(self, blocks: int, block_size: int) -> None:
        if blocks < 1 or block_size < 1:
            raise PrefixCacheError("a prefix cache needs at least one block of at least one token")
        self.block_size, self.blocks = block_size, blocks
        # vLLM's queue starts as blocks 0..n-1 and takes from its head, so the blocks never used are always
        # taken first, in order: they are a counter here, and memory follows the blocks used, not the pool's
        # size (a pool of two billion blocks costs nothing until it is filled)
        self.fresh = 0  # blocks 0..fresh-1 have been used; ref and key_of hold them
        self.ref: list[int] = []
        self.key_of: list[Hashable | None] = []
        self.by_key: dict[Hashable, dict[int, None]] = {}  # key -> the blocks holding it, oldest first
        self.free_queue: OrderedDict[int, None] = OrderedDict()  # used blocks nobody holds, in vLLM's order
        self.counts = CacheCounts()

    @property
    def num_free(self) -> int:
        """Blocks a new allocation can take: never used, freed, or cached and held by no request."""
        return self.blocks - self.fresh + len(self.free_queue)

    def lookup(self, keys: Sequence[Hashable], prompt_tokens: int) -> list[int]:
        """The blocks of the longest run of leading keys in the pool, at most (prompt_tokens - 1) // block_size
        of them. Counts the query; takes no reference (see `touch`)."""
        most = min(len(keys), (prompt_tokens - 1) // self.block_size)
        hits: list[int] = []
        for key in keys[:most]:
            holders = self.by_key.get(key)
            if not holders:
                break
            hits.append(next(iter(holders)))
        self.counts.queried_tokens += prompt_tokens
        self.counts.hit_tokens += len(hits) * self.block_size
        return hits

    def cached_prefix(self, keys: Sequence[Hashable]) -> int:
        """How many leading keys the pool holds (a router's look; nothing counted, nothing touched)."""
        n = 0
        for key in keys:
            if key not in self.by_key:
                break
            n += 1
        return n

    def evictable(self, blocks: Sequence[int]) -> int:
        """How many of these blocks sit in the free queue (reusing them takes them out of it)."""
        return sum(1 for b in blocks if self.ref[b] == 0)

    def touch(self, blocks: Sequence[int]) -> None:
        """A request takes a reference to each block; one nobody held leaves the free queue."""
        for b in blocks:
            if self.ref[b] == 0:
                del self.free_queue[b]
            self.ref[b] += 1

    def allocate(self, n: int) -> list[int]:
        """n blocks from the head of the free queue (never-used blocks first, in order), each with one
        reference; a cached one is evicted."""
        if n > self.num_free:
            raise PrefixCacheError(f"{n} blocks asked of a pool with {self.num_free} free")
        out = []
        for _ in range(n):
            if self.fresh < self.blocks:
                b = self.fresh
                self.fresh += 1
                self.ref.append(1)
                self.key_of.append(None)
                out.append(b)
                continue
            b, _ = self.free_queue.popitem(last=False)
            key = self.key_of[b]
            if key is not None:
                holders = self.by_key[key]
                del holders[b]
                if not holders:
                    del self.by_key[key]
                self.key_of[b] = None
                self.counts.evicted_blocks += 1
            self.ref[b] = 1
            out.append(b)
        return out

    def register(self, block: int, key: Hashable) -> None:
        """A full prompt block's key, once its tokens are scheduled (a block already named keeps its name)."""
        if self.key_of[block] is None:
            self.key_of[block] = key
            self.by_key.setdefault(key, {})[block] = None

    def free(self, blocks: Sequence[int]) -> None:
        """A request lets go of its blocks, last first: each that nobody else holds joins the queue's tail."""
        for b in reversed(blocks):
            self.ref[b] -= 1
            if self.ref[b] == 0:
                self.free_queue[b] = None
