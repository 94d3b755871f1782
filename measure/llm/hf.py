"""`-w hf:<local folder>`: a Llama-style model from a local folder through transformers (the optional `llm`
extra), with the same prefill and decode steps as the built-in decoder.

Only safetensors weights are read (a pickled .bin can run code when loaded), never with remote code, never
from a hub. The folder's config.json has already been checked as data by `shape_from_hf_config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from measure.core.steady_state import Step
from measure.workloads.decoder_shape import DecoderShape


class HfLoadError(ValueError):
    """A model folder that cannot be loaded safely (no safetensors, transformers missing, load failure)."""


class HfDecoder(nn.Module):
    """A transformers causal LM seen as the built-in decoder is: next-token logits of the last position."""

    def __init__(self, model: nn.Module, shape: DecoderShape) -> None:
        super().__init__()
        self.model = model
        self.shape = shape

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[:, -1]

    def prefill_step(self, batch: int, prompt_tokens: int, device: Any) -> Step:
        """Prompts of `prompt_tokens` into a fresh cache."""
        ids = torch.randint(0, self.shape.vocab_size, (batch, prompt_tokens), device=device)

        def step() -> torch.Tensor:
            return self.model(input_ids=ids, use_cache=True, logits_to_keep=1).logits

        return step

    def decode_step(self, batch: int, context: int, device: Any) -> Step:
        """One token per sequence over a cache of `context` tokens, cropped back after every step."""
        from transformers import DynamicCache

        cache = DynamicCache()
        with torch.inference_mode():
            self.model(
                input_ids=torch.randint(0, self.shape.vocab_size, (batch, context), device=device),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        one = torch.randint(0, self.shape.vocab_size, (batch, 1), device=device)

        def step() -> torch.Tensor:
            out = self.model(input_ids=one, past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache.crop(-1)  # transformers 5: a negative count drops that many tokens from the end
            return out.logits

        return step


def load_hf_decoder(folder: Path, shape: DecoderShape, dtype: torch.dtype, device: torch.device) -> HfDecoder:
    """The folder's model at `dtype` on `device`: safetensors only, no remote code, no network."""
    if not any(folder.glob("*.safetensors")):
        raise HfLoadError(f"{folder} has no .safetensors weights (pickled .bin weights are never loaded)")
    try:
        from transformers import AutoModelForCausalLM
    except ImportError as exc:
        raise HfLoadError(f"hf: needs the 'llm' extra (transformers): {exc}") from None
    model = AutoModelForCausalLM.from_pretrained(
        str(folder),
        local_files_only=True,
        trust_remote_code=False,
        use_safetensors=True,
        dtype=dtype,
    )
    module: nn.Module = model  # transformers' own annotations of .to() do not take a device
    return HfDecoder(module.to(device).eval(), shape)
