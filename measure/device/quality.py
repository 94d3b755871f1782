"""Numeric-quality proxy: each precision's outputs against the strict-fp32 outputs on identical inputs.

Lower precision is an economic lever whose accuracy cost depends on the task; with random weights and
random inputs this cannot be task accuracy, so it is stated as a proxy: relative L2 error, cosine
similarity and (for classifiers) top-1 agreement with the fp32 reference on the same device.
"""

from __future__ import annotations

from typing import Any

import torch

from measure.device.precision import Prepared, cast_inputs, math_mode, prepare
from measure.device.target import Device
from measure.run import QualityProxy
from measure.workloads.builtin import BuiltWorkload

QUALITY_ITEMS = 32
ITEM_FALLBACKS = (QUALITY_ITEMS, 8, 1)  # fewer items when the reference batch does not fit in memory
REFERENCE = "fp32 with tf32 disabled, same device, same weights"
INPUTS_DOC = (
    f"up to {QUALITY_ITEMS} items of the workload's random inputs (fixed seed; fewer when the reference batch "
    "runs out of memory); random weights, so this is a numeric-error proxy, not task accuracy"
)


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, list | tuple) and out:
        return _first_tensor(out[0])
    if isinstance(out, dict) and out:
        return _first_tensor(next(iter(out.values())))
    raise TypeError(f"workload output {type(out).__name__} holds no tensor")


def forward(
    prepared: Prepared, inputs: tuple[torch.Tensor, ...], device: Device, precision: str
) -> torch.Tensor:
    """The module's output on the inputs, as float64 on the host, one row per item."""
    with torch.inference_mode(), math_mode(precision):
        staged = cast_inputs(tuple(t.to(device.torch_device) for t in inputs), prepared.input_dtype)
        out = _first_tensor(prepared.module(*staged))
        device.synchronize()
    return out.detach().to("cpu", torch.float64).reshape(out.shape[0], -1)


def reference(
    built: BuiltWorkload, device: Device, seq_len: int | None, items: int = QUALITY_ITEMS
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Fixed inputs for the proxy and the strict-fp32 outputs on them."""
    inputs = built.inputs(items, seq_len)
    ref_module = prepare("fp32", built.module, device)
    try:
        return inputs, forward(ref_module, inputs, device, "fp32")
    finally:
        del ref_module
        device.release_memory()


def compare(
    precision: str, seq_len: int | None, out: torch.Tensor, ref: torch.Tensor, classifier: bool
) -> QualityProxy:
    """The proxy metrics of `out` against `ref` (both float64, one row per item)."""
    items = int(ref.shape[0])
    bad = int((~torch.isfinite(out)).sum())
    if bad:
        return QualityProxy(
            precision=precision,
            seq_len=seq_len,
            status="nonfinite",
            reason=f"{bad} of {out.numel()} outputs are NaN or infinite in {precision}",
            items=items,
        )
    diff = out - ref
    ref_norm = float(torch.linalg.vector_norm(ref))
    rel = (
        float(torch.linalg.vector_norm(diff)) / ref_norm
        if ref_norm > 0
        else float(torch.linalg.vector_norm(diff))
    )
    cos = torch.nn.functional.cosine_similarity(out, ref, dim=1, eps=1e-30)
    top1 = float((out.argmax(dim=1) == ref.argmax(dim=1)).double().mean()) if classifier else None
    return QualityProxy(
        precision=precision,
        seq_len=seq_len,
        status="ok",
        items=items,
        rel_l2_error=rel,
        cosine_similarity_mean=float(cos.mean()),
        cosine_similarity_min=float(cos.min()),
        max_abs_error=float(diff.abs().max()),
        top1_agreement=top1,
    )


def proxy(
    precision: str,
    seq_len: int | None,
    prepared: Prepared,
    device: Device,
    inputs: tuple[torch.Tensor, ...],
    ref: torch.Tensor,
    classifier: bool,
) -> QualityProxy:
    """Run the prepared module on the reference inputs and compare; a failure is recorded, not raised."""
    try:
        out = forward(prepared, inputs, device, precision)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        device.release_memory()
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return QualityProxy(
            precision=precision,
            seq_len=seq_len,
            status="unsupported",
            reason=f"forward on the reference inputs failed: {type(exc).__name__}: {first}",
            items=int(ref.shape[0]),
        )
    return compare(precision, seq_len, out, ref, classifier)
