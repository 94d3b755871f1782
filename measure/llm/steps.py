"""The LLM steps timed: prefill, decode and mixed forwards of a prepared decoder, and their FLOPs."""

from __future__ import annotations

import warnings
from typing import Any, Protocol, cast

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from measure.core.parsing import SweepError
from measure.core.steady_state import Step
from measure.device.precision import Prepared, swap_linears_to_fp8
from measure.device.target import Device
from measure.llm.plan import LlmSource
from measure.workloads import decoder as lm


def prepare_llm(precision: str, src: LlmSource, device: Device) -> Prepared:
    """The decoder at `precision`, built in place on the device (never a full fp32 copy first)."""
    dev = device.torch_device

    def load(dtype: torch.dtype, on: torch.device) -> nn.Module:
        if src.hf_folder is not None:
            from measure.llm.hf import load_hf_decoder

            return load_hf_decoder(src.hf_folder, src.shape, dtype, on)
        return lm.Decoder.build(src.shape, dtype, on)

    if precision in ("fp32", "tf32"):
        mode = "tf32 tensor-core matmuls" if precision == "tf32" else "strict fp32 (tf32 disabled)"
        return Prepared(load(torch.float32, dev), torch.float32, f"fp32 weights and KV cache; {mode}")
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return Prepared(load(dtype, dev), dtype, f"weights, activations and KV cache in {precision}")
    if precision == "int8":
        module = load(torch.float32, dev)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao prints a migration notice on every call
            torch.ao.quantization.quantize_dynamic(module, {nn.Linear}, dtype=torch.qint8, inplace=True)
        return Prepared(
            module,
            torch.float32,
            "dynamic int8 (torch.ao quantize_dynamic, per-tensor qint8 weights) for every Linear layer; "
            "embeddings, norms, attention and the KV cache in fp32",
        )
    if precision == "fp8":
        module = load(torch.bfloat16, dev)
        converted, kept = swap_linears_to_fp8(module)
        return Prepared(
            module,
            torch.bfloat16,
            f"fp8 e4m3 (torch._scaled_mm, per-tensor scales) for {converted} Linear layers; {kept} Linear "
            "layers, attention and the KV cache in bf16",
        )
    raise SweepError(f"unknown precision {precision!r}")


class StepMaker(Protocol):
    """A decoder that is not the built-in one (a transformers model) and makes its own steps."""

    def prefill_step(self, batch: int, prompt_tokens: int, device: Any) -> Step: ...

    def decode_step(self, batch: int, context: int, device: Any) -> Step: ...


def make_llm_step(
    module: nn.Module, phase: str, batch: int, seq: int | None, ctx: int | None, chunk: int | None, dev: Any
) -> Step:
    """The timed iteration of one point kind."""
    if isinstance(module, lm.Decoder):
        if phase == "prefill" and seq is not None:
            return lm.prefill_step(module, batch, seq, dev)
        if phase == "decode" and ctx is not None:
            return lm.decode_step(module, batch, ctx, dev)
        if phase == "mixed" and ctx is not None and chunk is not None:
            return lm.mixed_step(module, batch, ctx, chunk, dev)
        raise SweepError(f"a {phase} point without its sizes")
    maker = cast(StepMaker, module)
    if phase == "prefill" and seq is not None:
        return maker.prefill_step(batch, seq, dev)
    if phase == "decode" and ctx is not None:
        return maker.decode_step(batch, ctx, dev)
    raise SweepError("mixed steps need the built-in decoder (packed attention); use hf-config: for its shape")


def step_flops(step: Step) -> float | None:
    """FLOPs of one call of the step, counted by torch (math attention, so the counter sees it)."""
    try:
        with torch.inference_mode(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as fc:
            step()
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception:
        return None
    flops = fc.get_total_flops()
    return float(flops) if flops > 0 else None
