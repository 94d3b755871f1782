"""Prompts as token ids with a stated prefix structure, so an engine's prefix cache sees exactly the sharing a
trace or a measurement names.

A block id stands for `block_tokens` token ids drawn from a generator seeded by (salt, id): equal ids give equal
tokens, different ids (or salts) tokens that share nothing in practice. A prompt is its blocks' tokens in order,
cut to its length (the last block may be partial, as in a Mooncake trace). Ids are drawn from 256 values above
the low ids most tokenizers keep for special tokens: every tokenizer of a served LLM has them, so no vocabulary is
needed. The salt keeps one load level's blocks from hitting what an earlier level left in the engine's cache.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

FIRST_ID = 16
ID_SPAN = 256
MAX_PROMPT_TOKENS = 1 << 20


class PrefixPromptError(ValueError):
    """A prompt whose blocks cannot cover its length, or a length out of bounds."""


def block(block_id: int, salt: int, block_tokens: int) -> list[int]:
    """The token ids block `block_id` stands for under `salt`."""
    rng = random.Random(hash((salt, block_id)))  # ints and tuples of ints hash the same in every process
    return [FIRST_ID + rng.randrange(ID_SPAN) for _ in range(block_tokens)]


def prefix_prompt(ids: Sequence[int], block_tokens: int, length: int, salt: int, seed: int) -> list[int]:
    """`length` token ids made of the blocks `ids` in order (the last one cut where the prompt ends); tokens past
    the last block are this request's own (`seed`), as the engine model reads them (no key, no hit)."""
    if not 1 <= length <= MAX_PROMPT_TOKENS:
        raise PrefixPromptError(f"prompt length must be in 1..{MAX_PROMPT_TOKENS:,}, got {length:,}")
    if block_tokens < 1:
        raise PrefixPromptError(f"a block must hold at least 1 token, got {block_tokens}")
    out: list[int] = []
    for x in ids[: -(-length // block_tokens)]:
        out += block(x, salt, block_tokens)
    return out[:length] + unique_suffix(length - len(out), seed)


def unique_suffix(length: int, seed: int) -> list[int]:
    """`length` token ids no other prompt starts its blocks with (a fresh salt per seed)."""
    return block(0, -1 - seed, length) if length else []
