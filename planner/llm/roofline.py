"""Assumed LLM profiles for hardware you do not own: engine step times and KV capacity from a roofline of the
model's shape on a device's datasheet, with the efficiency factors stated. Never evidence: every figure sized
from one is labelled ASSUMED, and a measured run of the same model and device outranks it.

One replica is `tensor_parallel` devices of the sheet; weights, KV cache and the work of a step are split
evenly across them, and each layer's two all-reduces cross the interconnect. Per step:

- compute: 2 x matmul parameters x tokens, plus attention 4 x layers x heads x head_dim x context per token,
  at peak FLOPS x the compute efficiency (prefill's and decode's stated apart);
- memory: the weights once, plus the KV cache read (decode: batch x context tokens of it), at the memory
  bandwidth x its efficiency;
- the step is the slower of the two (a roofline: they overlap perfectly), plus tensor-parallel traffic (a ring
  all-reduce moves 2 (t - 1) / t of the activations per layer, twice, at link bandwidth x efficiency, plus a
  latency per all-reduce) and a fixed step overhead (scheduling, launches: stated, not derived).

A prompt chunk riding in a decode step adds its compute only (the weights are already being read). KV capacity
is the replica's memory x the memory fraction, less the weights, over the KV bytes of one token.

What the roofline leaves out is the usual: kernel efficiency varies with shape (the factors are one number
each), framework overheads on small models dominate (the error against the shipped CPU runs says how much),
pipeline parallelism and expert routing are not modelled.

Schema history: 1 - first version.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from measure.run import ReplicaShape
from measure.run.datafile import DataFileError, parse_yaml, read_regular_file
from measure.run.types import FileModel
from measure.run.versioned import VersionedFile
from planner.llm.steps import Curve, StepModel

SHEETS = Path(__file__).with_name("sheets")
MAX_PROFILE_BYTES = 256 * 1024
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
KV_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 2}  # vLLM keeps the KV cache in 16 bits unless told
BLOCK = 16
PREFILL_GRID = [2**i for i in range(0, 18)]  # 1 .. 131,072 tokens a step
BATCH_GRID = [2**i for i in range(0, 12)]  # 1 .. 2,048 sequences a step
CONTEXT_GRID = [2**i for i in range(4, 18)]  # 16 .. 131,072 tokens


class LlmProfileError(ValueError):
    """An assumed LLM profile that cannot be read or used; one line naming the problem."""


class Sourced(FileModel):
    """Figures that say where they come from."""

    source: str = Field(min_length=1, max_length=1000, description="where the figures come from")


class DeviceSheet(Sourced):
    """A device's datasheet figures: what a roofline needs."""

    name: str = Field(min_length=1, max_length=200)
    price_key: str | None = Field(default=None, max_length=200, description="the price book's device key")
    memory_gb: float = Field(gt=0, le=100_000, description="GB (10^9 bytes), as datasheets state it")
    memory_bandwidth_gbps: float = Field(gt=0, le=1e6, description="GB/s")
    peak_tflops: dict[Literal["fp32", "bf16", "fp16", "fp8"], float] = Field(min_length=1)
    interconnect_gbps: float | None = Field(
        default=None, gt=0, le=1e6, description="per device, one direction, GB/s"
    )
    board_power_w: float | None = Field(
        default=None, gt=0, le=100_000, description="maximum board power (TDP): an upper bound on its draw"
    )

    @model_validator(mode="after")
    def _positive(self) -> DeviceSheet:
        if any(not 0 < v <= 1e6 for v in self.peak_tflops.values()):
            raise ValueError("peak_tflops must be in (0, 1e6]")
        return self


class ModelShape(Sourced):
    """The shape of a decoder-only transformer, by its Hugging Face config names."""

    name: str = Field(min_length=1, max_length=200)
    names: list[str] = Field(default_factory=list, max_length=16, description="other names it goes by")
    hidden_size: int = Field(gt=0, le=1_000_000)
    intermediate_size: int = Field(gt=0, le=10_000_000)
    num_hidden_layers: int = Field(gt=0, le=10_000)
    num_attention_heads: int = Field(gt=0, le=10_000)
    num_key_value_heads: int = Field(gt=0, le=10_000)
    vocab_size: int = Field(gt=0, le=10_000_000)
    head_dim: int | None = Field(default=None, gt=0, le=100_000)
    tie_word_embeddings: bool = False
    max_position_embeddings: int = Field(default=131_072, gt=0, le=10_000_000)

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    def layer_params(self) -> int:
        h, q, kv = self.hidden_size, self.num_attention_heads * self.hd, self.num_key_value_heads * self.hd
        return h * q + 2 * h * kv + q * h + 3 * h * self.intermediate_size + 2 * h

    def parameters(self) -> int:
        """Every weight: embeddings, layers, final norm and (untied) output head."""
        emb = self.vocab_size * self.hidden_size
        return (
            emb * (1 if self.tie_word_embeddings else 2)
            + self.num_hidden_layers * self.layer_params()
            + self.hidden_size
        )

    def matmul_params(self) -> int:
        """The weights a token multiplies through: layers and the output head (the embedding is a lookup)."""
        return self.num_hidden_layers * self.layer_params() + self.vocab_size * self.hidden_size

    def kv_bytes_per_token(self, precision: str) -> int:
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.hd * KV_BYTES[precision]


class Efficiency(FileModel):
    """The stated fractions of the datasheet a real engine reaches: assumptions, each one number."""

    prefill_compute: float = Field(default=0.5, gt=0, le=1)
    decode_compute: float = Field(default=0.5, gt=0, le=1)
    memory_bandwidth: float = Field(default=0.7, gt=0, le=1)
    interconnect: float = Field(default=0.7, gt=0, le=1)
    allreduce_latency_us: float = Field(default=10.0, ge=0, le=10_000)
    step_overhead_ms: float = Field(default=0.0, ge=0, le=10_000)
    memory_fraction: float = Field(default=0.9, gt=0, le=1, description="vLLM's gpu_memory_utilization")
    source: str = Field(default="stated assumptions, not measured", max_length=1000)


class LlmProfile(FileModel):
    """An assumed LLM profile: a model on a replica of devices, timed by a roofline; never evidence."""

    schema_version: Literal[1] = 1
    kind: Literal["assumed-llm-profile"] = "assumed-llm-profile"
    name: str = Field(min_length=1, max_length=200)
    device: str | DeviceSheet = Field(description="a shipped sheet's name, or a sheet")
    model: str | ModelShape = Field(description="a shipped model shape's name, or a shape")
    tensor_parallel: int = Field(default=1, ge=1, le=64)
    precision: Literal["fp32", "bf16", "fp16", "fp8"] = "bf16"
    efficiency: Efficiency = Field(default_factory=Efficiency)
    notes: str = Field(default="", max_length=4000)

    @property
    def sheet(self) -> DeviceSheet:
        """The device sheet, shipped or inline."""
        return self.device if isinstance(self.device, DeviceSheet) else shipped_devices()[self.device]

    @property
    def shape(self) -> ModelShape:
        """The model shape, shipped or inline."""
        return self.model if isinstance(self.model, ModelShape) else shipped_models()[self.model]

    @property
    def id(self) -> str:
        return f"assumed-llm:{self.name}"

    def short_id(self) -> str:
        return self.id

    def replica(self) -> ReplicaShape:
        return ReplicaShape(
            devices=self.tensor_parallel,
            tensor_parallel=self.tensor_parallel if self.tensor_parallel > 1 else None,
            source=f"the assumed profile {self.name} (tensor_parallel {self.tensor_parallel})",
        )

    def label(self) -> str:
        return f"ASSUMED roofline: {self.shape.name} on {self.tensor_parallel}x {self.sheet.name} at {self.precision}"

    @model_validator(mode="after")
    def _usable(self) -> LlmProfile:
        for what, ref, kind in (("device", self.device, "devices"), ("model", self.model, "models")):
            if isinstance(ref, str) and ref not in _shipped(
                kind, DeviceSheet if kind == "devices" else ModelShape
            ):
                known = ", ".join(sorted(_shipped(kind, DeviceSheet if kind == "devices" else ModelShape)))
                raise ValueError(f"{what} {ref!r} is not a shipped sheet (known: {known}); give it inline")
        if self.precision not in self.sheet.peak_tflops:
            raise ValueError(f"the {self.sheet.name} sheet states no peak FLOPS at {self.precision}")
        if self.tensor_parallel > 1 and self.sheet.interconnect_gbps is None:
            raise ValueError(f"tensor_parallel {self.tensor_parallel} needs the sheet's interconnect_gbps")
        if self.shape.num_attention_heads % self.tensor_parallel:
            raise ValueError(
                f"{self.shape.num_attention_heads} attention heads do not split over tensor_parallel "
                f"{self.tensor_parallel}"
            )
        if kv_tokens(self) < BLOCK:
            raise ValueError(
                f"{self.shape.name} at {self.precision} does not fit {self.tensor_parallel}x {self.sheet.name} "
                f"({weights_gb(self):,.1f} GB of weights, {self.sheet.memory_gb * self.tensor_parallel:,.0f} GB "
                f"at memory fraction {self.efficiency.memory_fraction:g})"
            )
        return self


@cache
def _shipped(kind: str, model: type[DeviceSheet] | type[ModelShape]) -> dict[str, DeviceSheet | ModelShape]:
    """The sheets shipped beside this module (devices.yaml, models.yaml), by name."""
    path = SHEETS / f"{kind}.yaml"
    try:
        data = parse_yaml(read_regular_file(path, MAX_PROFILE_BYTES, "sheet file"), str(path))
    except DataFileError as exc:
        raise LlmProfileError(str(exc)) from None
    items = data.get(kind) if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise LlmProfileError(f"{path}: needs a list under {kind}")
    return {m.name: m for m in (model.model_validate(x) for x in items)}


def shipped_devices() -> dict[str, DeviceSheet]:
    """The device sheets shipped (planner/llm/sheets/devices.yaml), by name."""
    return _shipped("devices", DeviceSheet)  # type: ignore[return-value]


def shipped_models() -> dict[str, ModelShape]:
    """The model shapes shipped (planner/llm/sheets/models.yaml), by name."""
    return _shipped("models", ModelShape)  # type: ignore[return-value]


def weights_gb(p: LlmProfile) -> float:
    """The model's weights at the profile's precision, GB."""
    return p.shape.parameters() * BYTES[p.precision] / 1e9


def kv_tokens(p: LlmProfile) -> int:
    """KV tokens one replica holds: its memory at the fraction, less the weights, over one token's KV bytes."""
    free = p.sheet.memory_gb * p.tensor_parallel * p.efficiency.memory_fraction - weights_gb(p)
    return max(0, int(free * 1e9 // p.shape.kv_bytes_per_token(p.precision)))


def _flops(p: LlmProfile, which: str) -> float:
    eff = p.efficiency.prefill_compute if which == "prefill" else p.efficiency.decode_compute
    return p.sheet.peak_tflops[p.precision] * 1e12 * eff * p.tensor_parallel


def _tp_ms(p: LlmProfile, tokens: float) -> float:
    t = p.tensor_parallel
    if t == 1:
        return 0.0
    link = (p.sheet.interconnect_gbps or 0.0) * 1e9 * p.efficiency.interconnect
    moved = 2 * (t - 1) / t * tokens * p.shape.hidden_size * 2  # 16-bit activations
    calls = 2 * p.shape.num_hidden_layers
    return calls * (moved / link * 1e3 + p.efficiency.allreduce_latency_us / 1e3)


def _attention_flops(p: LlmProfile, tokens: float, context: float) -> float:
    s = p.shape
    return 4.0 * s.num_hidden_layers * s.num_attention_heads * s.hd * context * tokens


def prefill_ms(p: LlmProfile, tokens: float) -> float:
    """A step prefilling `tokens` of one prompt from scratch (attention over half the prompt on average)."""
    s = p.shape
    compute = (2.0 * s.matmul_params() * tokens + _attention_flops(p, tokens, tokens / 2)) / _flops(
        p, "prefill"
    )
    memory = (
        s.parameters()
        * BYTES[p.precision]
        / (p.sheet.memory_bandwidth_gbps * 1e9 * p.efficiency.memory_bandwidth * p.tensor_parallel)
    )
    return max(compute, memory) * 1e3 + _tp_ms(p, tokens) + p.efficiency.step_overhead_ms


def decode_ms(p: LlmProfile, batch: float, context: float) -> float:
    """A step decoding one token for each of `batch` sequences at mean `context`."""
    s = p.shape
    compute = (2.0 * s.matmul_params() * batch + _attention_flops(p, batch, context)) / _flops(p, "decode")
    read = s.parameters() * BYTES[p.precision] + batch * context * s.kv_bytes_per_token(p.precision)
    memory = read / (p.sheet.memory_bandwidth_gbps * 1e9 * p.efficiency.memory_bandwidth * p.tensor_parallel)
    return max(compute, memory) * 1e3 + _tp_ms(p, batch) + p.efficiency.step_overhead_ms


def chunk_extra_ms(p: LlmProfile, tokens: float) -> float:
    """What a prompt chunk adds to the decode step it rides in: its compute (the weights are read anyway)."""
    s = p.shape
    return (
        (2.0 * s.matmul_params() * tokens + _attention_flops(p, tokens, tokens / 2))
        / _flops(p, "prefill")
        * 1e3
    )


def _curve(xs: list[int], f: Any) -> Curve:
    return Curve.build([(float(x), np.array([f(x)])) for x in xs])


def roofline_step_model(p: LlmProfile) -> StepModel:
    """The engine's step model from the roofline: deterministic step times on grids wider than any engine runs
    (prefill 1..131k tokens, batch 1..2,048, context 16..131k)."""
    ctxs = [c for c in CONTEXT_GRID if c <= max(p.shape.max_position_embeddings, CONTEXT_GRID[0])]
    decode = {c: _curve(BATCH_GRID, lambda b, c=c: decode_ms(p, b, c)) for c in ctxs}
    eff = p.efficiency
    notes = [
        f"{p.label()}: step times from a roofline of the {p.sheet.name} datasheet ({p.sheet.source}) at "
        f"efficiencies prefill {eff.prefill_compute:g}, decode {eff.decode_compute:g}, memory "
        f"{eff.memory_bandwidth:g}, interconnect {eff.interconnect:g} ({eff.source}); not measured"
    ]
    return StepModel(
        run_id=p.id,
        precision=p.precision,
        source="assumed",
        prefill=_curve(PREFILL_GRID, lambda t: prefill_ms(p, t)),
        decode=decode,
        chunk_extra=_curve(PREFILL_GRID, lambda t: chunk_extra_ms(p, t)),
        notes=notes,
    )


def llm_profile_filename(p: LlmProfile) -> str:
    """<name>.yaml."""
    return f"{p.name}.yaml"


LLM_PROFILE_FILE: VersionedFile[LlmProfile] = VersionedFile(
    LlmProfile,
    what="assumed LLM profile",
    version=1,
    error=LlmProfileError,
    max_bytes=MAX_PROFILE_BYTES,
    filename=llm_profile_filename,
    pattern="*.yaml",
    yaml=True,
    version_required=False,
    kind="assumed-llm-profile",
)


def load_llm_profile(path: str | Path) -> LlmProfile:
    """Read and check an assumed LLM profile (bounded YAML; sheets resolved and the model shown to fit)."""
    return LLM_PROFILE_FILE.read(path)


def is_llm_profile(path: str | Path) -> bool:
    """Whether the file declares itself an assumed LLM profile (read bounded; anything unreadable is not)."""
    try:
        data = parse_yaml(read_regular_file(Path(path), MAX_PROFILE_BYTES, "profile"), str(path))
    except DataFileError:
        return False
    return isinstance(data, dict) and data.get("kind") == "assumed-llm-profile"
