"""Run-level facts of an in-process LLM sweep: device memory, KV bytes per token, weight bytes, the KV tokens
that fit at a memory fraction, and energy per token of each phase. Each figure says how it was found."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from measure.run import (
    Energy,
    LlmFacts,
    MemoryFacts,
    ModelShape,
    PhaseEnergy,
    Point,
    PointTelemetry,
    Unavailable,
    unavailable,
)
from measure.workloads import decoder_shape as shp

if TYPE_CHECKING:
    from measure.device.precision import Prepared
    from measure.llm.plan import LlmSweepPlan


def shape_record(shape: shp.DecoderShape) -> ModelShape:
    """The run's record of a decoder shape."""
    return ModelShape(
        name=shape.name,
        num_hidden_layers=shape.num_hidden_layers,
        hidden_size=shape.hidden_size,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_key_value_heads,
        intermediate_size=shape.intermediate_size,
        vocab_size=shape.vocab_size,
        max_position_embeddings=shape.max_position_embeddings,
        parameters=shape.parameters(),
    )


def cache_dtype(module: nn.Module) -> torch.dtype:
    """The dtype the steps give the KV cache: the model's floating parameters' (fp32 under int8)."""
    return next(p.dtype for p in module.parameters() if p.is_floating_point())


def module_bytes(module: nn.Module) -> int:
    """Bytes of the weights as stored (quantized packed weights included; a tied tensor counted once)."""
    seen: set[int] = set()
    total = 0

    def add(x: object) -> None:
        nonlocal total
        if isinstance(x, torch.Tensor):
            key = x.data_ptr() if not x.is_quantized else id(x)
            if key not in seen:
                seen.add(key)
                total += x.numel() * x.element_size()
        elif isinstance(x, tuple | list):
            for y in x:
                add(y)

    for v in module.state_dict().values():
        add(v)
    return total


def meminfo_bytes(key: str, root: Path = Path("/proc")) -> tuple[int | None, str]:
    """A /proc/meminfo figure in bytes (MemTotal, MemAvailable), or None and why it could not be read."""
    try:
        for line in (root / "meminfo").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) * 1024, ""
    except (OSError, ValueError, IndexError) as exc:
        return None, f"/proc/meminfo unreadable: {exc}"
    return None, f"/proc/meminfo has no {key}"


def _device_memory(plan: LlmSweepPlan) -> tuple[int | Unavailable, str]:
    st = plan.sweep.stack
    if plan.sweep.device.kind == "cuda":
        if isinstance(st.device_memory_bytes, int):
            return st.device_memory_bytes, "total device memory as the driver reports it (stack)"
        return st.device_memory_bytes, "device memory unreadable"
    total, why = meminfo_bytes("MemTotal")
    if total is None:
        return unavailable(why), "unreadable"
    return total, "host RAM (/proc/meminfo MemTotal): a CPU's device memory"


def memory_facts(plan: LlmSweepPlan, precision: str, prepared: Prepared, points: list[Point]) -> MemoryFacts:
    """KV bytes per token (from the config and the cache dtype), weight bytes (measured), and what fits."""
    shape, module = plan.source.shape, prepared.module
    dtype = cache_dtype(module)
    size = torch.empty((), dtype=dtype).element_size()
    kv = shape.kv_bytes_per_token(size)
    weights = module_bytes(module)
    act: int | Unavailable
    peaks = [
        p.peak_memory_bytes - weights - p.batch_size * (p.seq_len or 0) * kv
        for p in points
        if p.precision == precision and p.phase == "prefill" and isinstance(p.peak_memory_bytes, int)
    ]
    if peaks:
        act = max(0, max(peaks))
    else:
        act = unavailable(
            "no allocator statistics on this device"
            if plan.sweep.device.kind == "cpu"
            else "no prefill point was measured at this precision"
        )
    total, total_how = _device_memory(plan)
    fit: int | Unavailable
    if isinstance(total, int):
        room = plan.memory_fraction * total - weights - (act if isinstance(act, int) else 0)
        fit = max(0, int(room // kv))
        how = (
            f"({plan.memory_fraction:g} x device memory - weight bytes - "
            + (
                "activation peak"
                if isinstance(act, int)
                else "nothing for activations (no allocator peak: an upper bound)"
            )
            + f") / KV bytes per token; device memory: {total_how}"
        )
    else:
        fit, how = unavailable(f"device memory unknown: {total.unavailable}"), "not computed"
    return MemoryFacts(
        precision=precision,
        kv_bytes_per_token=kv,
        kv_method=f"computed from the config: 2 x {shape.num_hidden_layers} layers x {shape.num_key_value_heads} "
        f"KV heads x {shape.head_dim} dims x {size} bytes ({str(dtype).removeprefix('torch.')} cache)",
        weight_bytes=weights,
        weight_method="measured: bytes of the converted model's stored tensors (state dict, tied tensors once)",
        activation_peak_bytes=act,
        kv_tokens_fit=fit,
        kv_tokens_fit_method=how,
    )


def phase_energy(points: list[Point], precisions: Sequence[str], no_energy: str) -> list[PhaseEnergy]:
    """Median J per token over each phase's measured points, or why there is no figure."""
    out = []
    for precision in precisions:
        for phase in ("prefill", "decode", "mixed"):
            mine = [
                p
                for p in points
                if p.precision == precision and p.phase == phase and p.latency_ms is not None
            ]
            if not mine:
                continue
            js = [
                p.telemetry.energy.energy_per_unit_j
                for p in mine
                if isinstance(p.telemetry, PointTelemetry)
                and isinstance(p.telemetry.energy, Energy)
                and p.telemetry.energy.energy_per_unit_j is not None
            ]
            if js:
                out.append(
                    PhaseEnergy(
                        precision=precision,
                        phase=phase,
                        j_per_token=statistics.median(js),
                        points=len(js),
                        range_j=(min(js), max(js)),
                    )
                )
            else:
                out.append(
                    PhaseEnergy(
                        precision=precision, phase=phase, j_per_token=unavailable(no_energy), points=0
                    )
                )
    return out


def _energy_reason(points: list[Point], fallback: str) -> str:
    for p in points:
        tel = p.telemetry
        if isinstance(tel, Unavailable):
            return tel.unavailable
        if isinstance(tel, PointTelemetry) and isinstance(tel.energy, Unavailable):
            return tel.energy.unavailable
    return fallback


def llm_facts(plan: LlmSweepPlan, memory: list[MemoryFacts], points: list[Point]) -> LlmFacts:
    """The run-level LLM block: shape, weights, memory per precision, energy per phase."""
    total, how = _device_memory(plan)
    reason = _energy_reason(points, plan.sweep.sensor_reason)
    energy = phase_energy(points, plan.sweep.request.precisions, reason)
    missing = all(isinstance(e.j_per_token, Unavailable) for e in energy)
    return LlmFacts(
        shape=shape_record(plan.source.shape),
        weights="loaded" if plan.source.weights == "loaded" else "random",
        weights_note=plan.source.weights_note,
        memory_fraction=plan.memory_fraction,
        device_memory_bytes=total,
        device_memory_method=how,
        memory=memory,
        energy=energy,
        energy_note=f"energy unavailable: {reason}" if missing else None,
    )
