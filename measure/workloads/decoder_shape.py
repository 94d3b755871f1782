"""A Llama-style decoder's shape, torch-free: presets (tiny, 1b, 8b) and a Hugging Face config.json read as
data (Llama-family types only, bounded, never remote code).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from measure.run.datafile import DataFileError, parse_json, read_regular_file

MAX_CONTEXT = 131_072


class ShapeError(ValueError):
    """A decoder shape that cannot be built (heads that do not divide, a context beyond the limit)."""


@dataclass(frozen=True)
class DecoderShape:
    """The sizes that set a dense decoder's cost; names as in Hugging Face Llama configs."""

    name: str
    num_hidden_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int
    rope_theta: float = 500_000.0
    tie_word_embeddings: bool = False

    def __post_init__(self) -> None:
        if (
            min(self.num_hidden_layers, self.hidden_size, self.num_attention_heads, self.num_key_value_heads)
            < 1
        ):
            raise ShapeError(f"{self.name}: every size must be >= 1")
        if self.hidden_size % self.num_attention_heads:
            raise ShapeError(f"{self.name}: hidden_size must be a multiple of num_attention_heads")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ShapeError(f"{self.name}: num_attention_heads must be a multiple of num_key_value_heads")
        if self.head_dim % 2:
            raise ShapeError(f"{self.name}: the head dimension must be even for rotary embeddings")
        if not 1 <= self.max_position_embeddings <= MAX_CONTEXT:
            raise ShapeError(f"{self.name}: max_position_embeddings must be in 1..{MAX_CONTEXT}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def parameters(self) -> int:
        """Parameter count from the shape alone (no model built)."""
        h, kv = self.hidden_size, self.num_key_value_heads * self.head_dim
        attn = 2 * h * h + 2 * h * kv
        mlp = 3 * h * self.intermediate_size
        layer = attn + mlp + 2 * h
        emb = self.vocab_size * h
        return self.num_hidden_layers * layer + h + emb * (1 if self.tie_word_embeddings else 2)

    def kv_bytes_per_token(self, bytes_per_element: int) -> int:
        """KV-cache bytes one token takes: keys and values in every layer."""
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.head_dim * bytes_per_element


PRESETS: dict[str, DecoderShape] = {
    "tiny": DecoderShape("tiny", 2, 128, 4, 2, 352, 1024, 4096),
    # the shapes of Llama 3.2 1B and Llama 3.1 8B (their published configs), with random weights
    "1b": DecoderShape("1b", 16, 2048, 32, 8, 8192, 128_256, 131_072, tie_word_embeddings=True),
    "8b": DecoderShape("8b", 32, 4096, 32, 8, 14_336, 128_256, 131_072),
}


MAX_CONFIG_BYTES = 1024 * 1024
HF_LLAMA_TYPES = (
    "llama",
    "mistral",
    "qwen2",
)  # dense decoders with this block; others are refused, not guessed
_HF_FIELDS = (
    "num_hidden_layers",
    "hidden_size",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
)


def shape_from_hf_config(path: str | Path) -> DecoderShape:
    """A decoder shape from a Hugging Face config.json (data only: read with bounds, nothing imported or run).

    Random weights are used with it: a dense model's speed does not depend on its weights.
    """
    p = Path(path)
    try:
        data = parse_json(read_regular_file(p, MAX_CONFIG_BYTES, "model config"), str(p))
    except DataFileError as exc:
        raise ShapeError(str(exc)) from None
    if not isinstance(data, dict):
        raise ShapeError(f"{p}: a model config must be a JSON object")
    kind = data.get("model_type")
    if kind not in HF_LLAMA_TYPES:
        raise ShapeError(
            f"{p}: model_type {kind!r} is not a Llama-style decoder ({', '.join(HF_LLAMA_TYPES)})"
        )
    sizes: dict[str, int] = {}
    for key in _HF_FIELDS:
        v = data.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1_048_576:
            raise ShapeError(f"{p}: {key} must be an integer in 1..1048576, got {v!r}")
        sizes[key] = v
    kv = data.get("num_key_value_heads", sizes["num_attention_heads"])
    if not isinstance(kv, int) or isinstance(kv, bool) or kv < 1:
        raise ShapeError(f"{p}: num_key_value_heads must be a positive integer, got {kv!r}")
    theta = data.get("rope_theta", 10_000.0)
    if not isinstance(theta, int | float) or isinstance(theta, bool) or not 1 <= theta <= 1e9:
        raise ShapeError(f"{p}: rope_theta must be a number in 1..1e9, got {theta!r}")
    tied = data.get("tie_word_embeddings", False)
    if not isinstance(tied, bool):
        raise ShapeError(f"{p}: tie_word_embeddings must be true or false")
    name = f"hf-config:{p.name}"
    return DecoderShape(
        name,
        sizes["num_hidden_layers"],
        sizes["hidden_size"],
        sizes["num_attention_heads"],
        kv,
        sizes["intermediate_size"],
        sizes["vocab_size"],
        min(sizes["max_position_embeddings"], MAX_CONTEXT),
        float(theta),
        tied,
    )


def shape_for(preset: str, **overrides: Any) -> DecoderShape:
    """A preset, optionally with some sizes replaced."""
    if preset not in PRESETS:
        raise ShapeError(f"unknown preset {preset!r}: use {', '.join(PRESETS)}")
    return replace(PRESETS[preset], **overrides) if overrides else PRESETS[preset]
