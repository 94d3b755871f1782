"""Precision conversion: what runs, what is refused, and the fp8 layer's numerics (on torch's CPU kernel)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from measure.core.parsing import PrecisionError, parse_precisions
from measure.device.precision import (
    Fp8Linear,
    math_mode,
    prepare,
    swap_linears_to_fp8,
    tf32_enabled,
    unsupported_reason,
)
from measure.device.target import parse_device


def test_parse_precisions_validates_and_dedupes() -> None:
    assert parse_precisions("fp32, bf16,fp32") == ["fp32", "bf16"]
    with pytest.raises(PrecisionError, match="unknown precision 'fp64'"):
        parse_precisions("fp32,fp64")
    with pytest.raises(PrecisionError, match="no precision"):
        parse_precisions(" , ")


def test_fp32_disables_tf32_tf32_enables_it_and_the_previous_mode_is_restored() -> None:
    before = tf32_enabled()
    with math_mode("fp32"):
        assert not tf32_enabled()
    with math_mode("tf32"):
        assert tf32_enabled()
    assert tf32_enabled() == before


def test_bf16_and_fp16_cast_weights_and_leave_the_source_module_untouched() -> None:
    src = nn.Linear(8, 8)
    cpu = parse_device("cpu")
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        prep = prepare(name, src, cpu)
        assert prep.module.weight.dtype == dtype and prep.input_dtype == dtype  # type: ignore[union-attr]
    assert src.weight.dtype == torch.float32


def test_fp8_linear_tracks_the_fp32_result_closely() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(64, 32)
    x = torch.randn(8, 64)
    ref = lin(x)
    out = Fp8Linear(lin)(x.to(torch.bfloat16)).float()
    rel = (out - ref).norm() / ref.norm()
    assert rel < 0.08  # e4m3 has a 3-bit mantissa: a few percent of relative error is expected
    assert out.shape == ref.shape


def test_fp8_swap_converts_only_aligned_linears() -> None:
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))
    converted, kept = swap_linears_to_fp8(model)
    assert (converted, kept) == (1, 1)
    assert isinstance(model[0], Fp8Linear) and isinstance(model[2], nn.Linear)


def test_every_unsupported_combination_on_the_cpu_says_why() -> None:
    cpu = parse_device("cpu")
    mlp = nn.Sequential(nn.Linear(16, 16))
    conv = nn.Sequential(nn.Conv2d(3, 4, 3))
    assert "CPUs have none" in (unsupported_reason("tf32", cpu, mlp) or "")
    assert "fp8" in (unsupported_reason("fp8", cpu, mlp) or "")
    assert "Linear layers only" in (unsupported_reason("int8", cpu, conv) or "")
    for ok in ("fp32", "bf16", "fp16", "int8"):
        assert unsupported_reason(ok, cpu, mlp) is None


def test_is_oom_recognises_the_ways_torch_reports_allocation_failure() -> None:
    from measure.device.target import is_oom

    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(MemoryError())
    assert is_oom(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    )
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_oom(ValueError("out of memory"))  # only allocation error types count
