"""Numeric precisions: whether a device can really run one, and how a module is converted to it.

A combination the hardware or build cannot run is reported with a reason; nothing silently runs in
another precision. What exactly ran (which layers were converted, which stayed wider) is returned as
notes stored with each point.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from measure.core.parsing import PrecisionError
from measure.device.target import Device

FP8_MIN_CAPABILITY = (8, 9)  # Ada and Hopper: fp8 tensor cores
TF32_MIN_CAPABILITY = (8, 0)  # Ampere
BF16_MIN_CAPABILITY = (8, 0)
FP8_E4M3_MAX = 448.0
FP8_ALIGN = 16  # torch._scaled_mm needs inner and output dimensions divisible by 16


@dataclass(frozen=True)
class Prepared:
    """A module converted to a precision, the dtype its floating inputs take, and what ran how."""

    module: nn.Module
    input_dtype: torch.dtype
    notes: str


def unsupported_reason(precision: str, device: Device, module: nn.Module) -> str | None:
    """Why this precision cannot run for real on this device and module, or None if it can."""
    cap = device.compute_capability()
    has_conv = any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())
    has_linear = any(isinstance(m, nn.Linear) for m in module.modules())
    if precision == "tf32":
        if cap is None:
            return (
                "tf32 is a tensor-core math mode of NVIDIA GPUs (compute capability >= 8.0); CPUs have none"
            )
        if cap < TF32_MIN_CAPABILITY:
            return f"tf32 needs compute capability >= 8.0; this GPU is {cap[0]}.{cap[1]}"
    if precision == "bf16" and cap is not None and cap < BF16_MIN_CAPABILITY:
        return f"bf16 tensor cores need compute capability >= 8.0; this GPU is {cap[0]}.{cap[1]}"
    if precision == "fp8":
        if cap is None:
            return (
                "fp8 is measured only on hardware with fp8 matrix units (NVIDIA compute capability >= 8.9); "
                "on this CPU a timing would reflect emulation, not fp8 performance"
            )
        if cap < FP8_MIN_CAPABILITY:
            return f"fp8 matmuls need compute capability >= 8.9; this GPU is {cap[0]}.{cap[1]}"
        if has_conv:
            return "torch has no fp8 convolution kernels; the convolutions would not run in fp8"
        if not any(_fp8_eligible(m) for m in module.modules()):
            return f"no Linear layer has dimensions divisible by {FP8_ALIGN}, so nothing would run in fp8"
    if precision == "int8":
        if device.kind != "cpu":
            return "int8 uses torch's dynamic quantization, which runs on the CPU only"
        if has_conv:
            return "dynamic int8 quantization covers Linear layers only; the convolutions would stay fp32"
        if not has_linear:
            return "the module has no Linear layer for dynamic int8 quantization to convert"
    return None


# torch >= 2.9 has per-backend `fp32_precision`; mixing it with the legacy allow_tf32 flags is an error.
_NEW_TF32_API = hasattr(torch.backends.cuda.matmul, "fp32_precision")


def _tf32_state() -> tuple[object, object]:
    if _NEW_TF32_API:
        return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision  # type: ignore[attr-defined]
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def _set_tf32_state(state: tuple[object, object]) -> None:
    if _NEW_TF32_API:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = state  # type: ignore[attr-defined]
    else:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = state  # type: ignore[assignment]


def tf32_enabled() -> bool:
    """Whether float32 matmuls and convolutions may use tf32 right now."""
    matmul, conv = _tf32_state()
    return (matmul == "tf32" and conv == "tf32") if _NEW_TF32_API else bool(matmul and conv)


@contextlib.contextmanager
def math_mode(precision: str) -> Iterator[None]:
    """Set torch's float32 math mode for the precision (fp32 means strict IEEE fp32, never tf32), then restore."""
    prev = _tf32_state()
    allow = precision == "tf32"
    _set_tf32_state(
        ("tf32", "tf32") if _NEW_TF32_API and allow else ("ieee", "ieee") if _NEW_TF32_API else (allow, allow)
    )
    try:
        yield
    finally:
        _set_tf32_state(prev)


def prepare(precision: str, module: nn.Module, device: Device) -> Prepared:
    """A copy of `module` converted to `precision` on `device`; call `unsupported_reason` first."""
    base = copy.deepcopy(module).eval()
    if precision in ("fp32", "tf32"):
        mode = (
            "tf32 tensor-core matmuls/convolutions" if precision == "tf32" else "strict fp32 (tf32 disabled)"
        )
        return Prepared(base.to(device.torch_device, torch.float32), torch.float32, f"fp32 weights; {mode}")
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return Prepared(
            base.to(device.torch_device, dtype), dtype, f"weights and activations cast to {precision}"
        )
    if precision == "int8":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.ao prints a migration notice on every call
            qmod = torch.ao.quantization.quantize_dynamic(base, {nn.Linear}, dtype=torch.qint8)
        n = sum(1 for m in base.modules() if isinstance(m, nn.Linear))
        return Prepared(
            qmod,
            torch.float32,
            f"dynamic int8 (torch.ao quantize_dynamic, per-tensor qint8 weights, activations quantized per "
            f"batch) for {n} Linear layers; other ops (attention, norms, embeddings) in fp32",
        )
    if precision == "fp8":
        mod = base.to(device.torch_device, torch.bfloat16)
        converted, kept = swap_linears_to_fp8(mod)
        return Prepared(
            mod,
            torch.bfloat16,
            f"fp8 e4m3 (torch._scaled_mm, per-tensor scales, bf16 output) for {converted} Linear layers; "
            f"{kept} Linear layers not divisible by {FP8_ALIGN} and all other ops in bf16",
        )
    raise PrecisionError(f"unknown precision {precision!r}")


def _fp8_eligible(m: nn.Module) -> bool:
    return isinstance(m, nn.Linear) and m.in_features % FP8_ALIGN == 0 and m.out_features % FP8_ALIGN == 0


class Fp8Linear(nn.Module):
    """A Linear layer computing in fp8 e4m3: weights quantised once, activations per call (dynamic scale)."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        w = linear.weight.detach().float()
        w_scale = (w.abs().max() / FP8_E4M3_MAX).clamp(min=1e-12)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_fp8", (w / w_scale).to(torch.float8_e4m3fn))
        self.register_buffer("weight_scale", w_scale.reshape(()).float())
        bias = linear.bias.detach().to(torch.bfloat16) if linear.bias is not None else None
        self.register_buffer("bias", bias)

    weight_fp8: torch.Tensor
    weight_scale: torch.Tensor
    bias: torch.Tensor | None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, self.in_features)
        x_scale = (x2.abs().amax().float() / FP8_E4M3_MAX).clamp(min=1e-12)
        xq = (x2.float() / x_scale).to(torch.float8_e4m3fn).contiguous()  # _scaled_mm wants row-major
        y = torch._scaled_mm(
            xq,
            self.weight_fp8.t(),  # column-major view, as _scaled_mm requires for the second operand
            scale_a=x_scale,
            scale_b=self.weight_scale,
            bias=self.bias,
            out_dtype=torch.bfloat16,
        )
        return y.reshape(*shape[:-1], self.out_features)


def swap_linears_to_fp8(module: nn.Module) -> tuple[int, int]:
    """Replace every eligible nn.Linear in place by Fp8Linear; returns (converted, left as is)."""
    converted = kept = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                if _fp8_eligible(child):
                    setattr(parent, name, Fp8Linear(child))
                    converted += 1
                else:
                    kept += 1
    return converted, kept


def cast_inputs(inputs: tuple[torch.Tensor, ...], dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    """Floating inputs take the compute dtype; integer inputs (token ids) are left alone."""
    return tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)
