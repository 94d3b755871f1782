"""A Llama-style decoder in plain torch, with random weights and a real KV cache: the LLM workload's model.

RMSNorm, rotary position embeddings, grouped-query attention and a SwiGLU MLP, as in the Llama 2/3 family.
Weights are random: the speed of a dense model does not depend on its weights, and nothing is downloaded.
Shapes come from presets (`tiny` runs on 2 CPU cores; `1b` and `8b` are the shapes of Llama 3.2 1B and
Llama 3.1 8B) or from explicit sizes. The cache is preallocated for (batch, max context) per layer, so a
decode step reads a cache filled to the context it is measured at, as a serving engine's does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from measure.workloads.decoder_shape import DecoderShape, ShapeError


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x32 = x.float()
        return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(dtype) * self.weight


def rope_tables(shape: DecoderShape, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of every position's rotation, [max_position, head_dim / 2], float32."""
    half = shape.head_dim // 2
    inv = 1.0 / (shape.rope_theta ** (torch.arange(half, dtype=torch.float32, device=device) / half))
    ang = torch.outer(torch.arange(shape.max_position_embeddings, dtype=torch.float32, device=device), inv)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate [batch, heads, tokens, head_dim] by the tables' rows for those tokens (rotate-half form)."""
    a, b = x.float().chunk(2, dim=-1)
    c, s = cos[None, None], sin[None, None]
    return torch.cat((a * c - b * s, a * s + b * c), dim=-1).to(x.dtype)


class KVCache:
    """Keys and values per layer, [batch, kv_heads, max_context, head_dim], filled up to `length`."""

    def __init__(
        self,
        shape: DecoderShape,
        batch: int,
        max_context: int,
        dtype: torch.dtype,
        device: torch.device | str,
    ) -> None:
        if not 1 <= max_context <= shape.max_position_embeddings:
            raise ShapeError(
                f"a cache of {max_context} tokens exceeds the model's {shape.max_position_embeddings}"
            )
        dims = (batch, shape.num_key_value_heads, max_context, shape.head_dim)
        self.k = [torch.zeros(dims, dtype=dtype, device=device) for _ in range(shape.num_hidden_layers)]
        self.v = [torch.zeros(dims, dtype=dtype, device=device) for _ in range(shape.num_hidden_layers)]
        self.length = 0
        self.max_context = max_context

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.k, *self.v))


Segment = tuple[torch.Tensor, "KVCache | None"]  # token ids [batch, tokens] and the cache they extend


class Attention(nn.Module):
    """Grouped-query attention with rotary positions, reading and extending a KV cache.

    Works on packed segments: the projections run once over every token of every segment (as a serving
    engine's GEMMs do), attention runs per segment against that segment's own cache (its varlen kernel).
    """

    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        h, d = shape.hidden_size, shape.head_dim
        self.heads, self.kv_heads, self.head_dim = shape.num_attention_heads, shape.num_key_value_heads, d
        self.q = nn.Linear(h, self.heads * d, bias=False)
        self.k = nn.Linear(h, self.kv_heads * d, bias=False)
        self.v = nn.Linear(h, self.kv_heads * d, bias=False)
        self.o = nn.Linear(self.heads * d, h, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        dims: list[tuple[int, int]],
        cos: torch.Tensor,
        sin: torch.Tensor,
        caches: list[KVCache | None],
        layer: int,
    ) -> torch.Tensor:
        """x: [tokens, hidden], every segment's (batch, tokens) rows in order; returns the same layout."""
        q_all, k_all, v_all = self.q(x), self.k(x), self.v(x)
        outs, row = [], 0
        for (b, t), cache in zip(dims, caches, strict=True):
            rows = slice(row, row + b * t)
            row += b * t
            q = q_all[rows].view(b, t, self.heads, self.head_dim).transpose(1, 2)
            k = k_all[rows].view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            v = v_all[rows].view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
            outs.append(self._attend(q, k, v, cos, sin, cache, layer).reshape(b * t, -1))
        return self.o(torch.cat(outs) if len(outs) > 1 else outs[0])

    @staticmethod
    def _attend(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        cache: KVCache | None,
        layer: int,
    ) -> torch.Tensor:
        t = q.shape[2]
        start = cache.length if cache is not None else 0
        q = apply_rope(q, cos[start : start + t], sin[start : start + t])
        k = apply_rope(k, cos[start : start + t], sin[start : start + t])
        if cache is not None:
            cache.k[layer][:, :, start : start + t] = k
            cache.v[layer][:, :, start : start + t] = v
            k, v = cache.k[layer][:, :, : start + t], cache.v[layer][:, :, : start + t]
        if start == 0 or t == 1:  # one new token sees the whole cache: no mask, the fused kernels apply
            out = F.scaled_dot_product_attention(q, k, v, is_causal=start == 0 and t > 1, enable_gqa=True)
        else:  # new tokens see the whole cache and, among themselves, only earlier ones
            mask = torch.ones(t, start + t, dtype=torch.bool, device=q.device).tril(diagonal=start)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        return out.transpose(1, 2)


class DecoderLayer(nn.Module):
    """Pre-norm attention and SwiGLU MLP with residuals."""

    def __init__(self, shape: DecoderShape) -> None:
        super().__init__()
        h, i = shape.hidden_size, shape.intermediate_size
        self.attn_norm, self.mlp_norm = RMSNorm(h), RMSNorm(h)
        self.attn = Attention(shape)
        self.gate, self.up, self.down = (
            nn.Linear(h, i, bias=False),
            nn.Linear(h, i, bias=False),
            nn.Linear(i, h, bias=False),
        )

    def forward(
        self,
        x: torch.Tensor,
        dims: list[tuple[int, int]],
        cos: torch.Tensor,
        sin: torch.Tensor,
        caches: list[KVCache | None],
        layer: int,
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), dims, cos, sin, caches, layer)
        y = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(y)) * self.up(y))


class Decoder(nn.Module):
    """The decoder: token ids [batch, tokens] in, next-token logits [batch, vocab] of the last position out."""

    def __init__(self, shape: DecoderShape, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)  # random weights, reproducible: the speed does not depend on them
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab_size, shape.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(shape) for _ in range(shape.num_hidden_layers))
        self.norm = RMSNorm(shape.hidden_size)
        self.lm_head = nn.Linear(shape.hidden_size, shape.vocab_size, bias=False)
        if shape.tie_word_embeddings:
            self.lm_head.weight = self.embed.weight
        cos, sin = rope_tables(shape)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    @classmethod
    def build(
        cls, shape: DecoderShape, dtype: torch.dtype, device: torch.device | str, seed: int = 0
    ) -> Decoder:
        """The decoder made directly on `device` in `dtype` (no full-size fp32 copy on the host first).

        Weights are N(0, 0.02) drawn in float32 from a generator seeded on that device, one tensor at a time,
        so every precision built on one device holds the same weights (what the quality proxy compares).
        """
        with torch.device("meta"):
            model = cls(shape, seed).to(dtype=dtype)  # allocated once, in its own dtype
        model = model.to_empty(device=device)
        if shape.tie_word_embeddings:  # to_empty makes a new tensor per module: tie them again
            model.lm_head.weight = model.embed.weight
        gen = torch.Generator(device=device).manual_seed(seed)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                else:
                    p.copy_(torch.empty(p.shape, device=device).normal_(0.0, 0.02, generator=gen))
        model.cos, model.sin = rope_tables(shape, device)  # positions stay float32 at every precision
        return model.eval()

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        return self.forward_packed([(ids, cache)])

    def forward_packed(self, segments: list[Segment]) -> torch.Tensor:
        """One forward over several segments packed together (a decode batch and a prefill chunk, say):
        next-token logits for the last position of every sequence, segment by segment, [sequences, vocab]."""
        dims, caches, embedded = [], [], []
        for ids, cache in segments:
            b, t = ids.shape
            start = cache.length if cache is not None else 0
            if start + t > (cache.max_context if cache is not None else self.shape.max_position_embeddings):
                raise ShapeError(f"{start + t} tokens exceed the cache or the model's context")
            dims.append((b, t))
            caches.append(cache)
            embedded.append(self.embed(ids).reshape(b * t, -1))
        x = torch.cat(embedded) if len(embedded) > 1 else embedded[0]
        for i, layer in enumerate(self.layers):
            x = layer(x, dims, self.cos, self.sin, caches, i)
        last, row = [], 0
        for (b, t), cache in zip(dims, caches, strict=True):
            last.append(x[row : row + b * t].view(b, t, -1)[:, -1])
            row += b * t
            if cache is not None:
                cache.length += t
        return self.lm_head(self.norm(torch.cat(last) if len(last) > 1 else last[0]))


# ------------------------------------------------------------------------------------------------ steps
# One timed iteration of each LLM point kind. A step leaves the cache as it found it (its length is reset), so
# every iteration of a point measures the same state: a decode step at context c always reads c cached tokens.


def prefill_step(
    model: Decoder, batch: int, prompt_tokens: int, device: torch.device | str = "cpu"
) -> Callable[[], torch.Tensor]:
    """A step that prefills `batch` prompts of `prompt_tokens` into an empty cache (TTFT's compute)."""
    shape = model.shape
    ids = torch.randint(0, shape.vocab_size, (batch, prompt_tokens), device=device)
    dtype = next(model.parameters()).dtype
    cache = KVCache(shape, batch, prompt_tokens, dtype, device)

    def step() -> torch.Tensor:
        cache.length = 0
        return model(ids, cache)

    return step


def decode_step(
    model: Decoder, batch: int, context: int, device: torch.device | str = "cpu"
) -> Callable[[], torch.Tensor]:
    """A step that decodes one token for each of `batch` sequences over a cache filled to `context` tokens."""
    shape = model.shape
    dtype = next(model.parameters()).dtype
    cache = KVCache(shape, batch, context + 1, dtype, device)
    with torch.inference_mode():
        model(torch.randint(0, shape.vocab_size, (batch, context), device=device), cache)  # fill, not timed
    one = torch.randint(0, shape.vocab_size, (batch, 1), device=device)

    def step() -> torch.Tensor:
        cache.length = context
        return model(one, cache)

    return step


def mixed_step(
    model: Decoder, batch: int, context: int, chunk: int, device: torch.device | str = "cpu"
) -> Callable[[], torch.Tensor]:
    """A chunked-prefill step: one token for each of `batch` sequences over `context` cached tokens, plus the
    first `chunk` prompt tokens of a new sequence, in one forward (projections and MLP over the packed tokens)."""
    shape = model.shape
    dtype = next(model.parameters()).dtype
    decode_cache = KVCache(shape, batch, context + 1, dtype, device)
    chunk_cache = KVCache(shape, 1, chunk, dtype, device)
    with torch.inference_mode():
        model(torch.randint(0, shape.vocab_size, (batch, context), device=device), decode_cache)
    one = torch.randint(0, shape.vocab_size, (batch, 1), device=device)
    ids = torch.randint(0, shape.vocab_size, (1, chunk), device=device)

    def step() -> torch.Tensor:
        decode_cache.length, chunk_cache.length = context, 0
        return model.forward_packed([(one, decode_cache), (ids, chunk_cache)])

    return step
