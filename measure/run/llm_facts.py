"""An LLM run's facts: the grid asked for, the model's shape, KV-cache memory, energy per phase, the engine."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from measure.run.types import (
    MAX_NAME_CHARS,
    FileModel,
    NonNegFloat,
    Phase,
    PosFloat,
    Precision,
    SeqLen,
    Unavailable,
)

SizeList = Annotated[list[SeqLen], Field(max_length=64)]


class LlmGrid(FileModel):
    """The LLM grid that was asked for: in-process step kinds, or an engine's closed-loop settings."""

    mode: Literal["in-process", "engine"]
    prefill_batches: SizeList = Field(default_factory=list)
    prompt_tokens: SizeList = Field(default_factory=list)
    decode_batches: SizeList = Field(default_factory=list)
    contexts: SizeList = Field(default_factory=list)
    mixed_batches: SizeList = Field(default_factory=list)
    mixed_context: SeqLen | None = None
    chunks: SizeList = Field(default_factory=list)
    concurrencies: SizeList = Field(default_factory=list, description="engine: closed-loop concurrencies")
    output_tokens: SeqLen | None = Field(default=None, description="engine: max_tokens of every request")
    requests_per_point: int | None = Field(default=None, ge=1, le=100_000)
    timeout_s: PosFloat | None = Field(default=None, le=3600, description="engine: per-request time-out")


Count = Annotated[int, Field(ge=1, le=10**15)]


class ModelShape(FileModel):
    """A dense decoder's sizes (Hugging Face Llama config names) and its parameter count."""

    name: str = Field(max_length=MAX_NAME_CHARS)
    num_hidden_layers: Count
    hidden_size: Count
    num_attention_heads: Count
    num_key_value_heads: Count
    intermediate_size: Count
    vocab_size: Count
    max_position_embeddings: Count
    parameters: Count


class MemoryFacts(FileModel):
    """KV-cache and weight bytes at one precision, and the KV tokens that fit; each says how it was found."""

    precision: Precision
    kv_bytes_per_token: Count
    kv_method: str = Field(max_length=300)
    weight_bytes: Count
    weight_method: str = Field(max_length=300)
    activation_peak_bytes: int | Unavailable = Field(
        description="largest transient memory of a measured step above weights and cache (allocator peak)"
    )
    kv_tokens_fit: int | Unavailable = Field(description="KV tokens that fit at the memory fraction")
    kv_tokens_fit_method: str = Field(max_length=500)


class PhaseEnergy(FileModel):
    """Energy per token of one phase at one precision: the median over that phase's measured points."""

    precision: Precision
    phase: Phase
    j_per_token: NonNegFloat | Unavailable
    points: int = Field(ge=0, description="points the median is over")
    range_j: tuple[NonNegFloat, NonNegFloat] | None = Field(default=None, description="min and max over them")


ParamScalar = str | int | float | bool


class EngineStartup(FileModel):
    """How long the engine took to come up, timed from outside: from its process's start (the kernel's
    record) to its first answer and to the first token of its first request."""

    seconds: float = Field(
        ge=0, le=86_400, description="process start to the first token of the first request"
    )
    answered_after_s: float = Field(
        ge=0, le=86_400, description="process start to its first GET /v1/models answer"
    )
    how: str = Field(max_length=300, description="the process, and what was sent")


class EngineInfo(FileModel):
    """What a serving engine says about itself, and what the user told us about it."""

    url: str = Field(max_length=500, description="the base URL traffic went to")
    model: str = Field(max_length=500)
    served_models: list[str] | Unavailable = Field(description="ids from GET /v1/models")
    version: str | Unavailable = Field(description="GET /version when the server has one")
    params: dict[str, ParamScalar] = Field(
        default_factory=dict, description="--engine-param key=value as given: engine, max_num_seqs, ..."
    )
    startup: EngineStartup | Unavailable | None = Field(
        default=None, description="measured with --engine-pid (or why not); null: not asked"
    )

    @field_validator("params")
    @classmethod
    def _few(cls, v: dict[str, ParamScalar]) -> dict[str, ParamScalar]:
        if len(v) > 64 or any(len(k) > 100 or (isinstance(x, str) and len(x) > 500) for k, x in v.items()):
            raise ValueError("at most 64 engine params, keys up to 100 and values up to 500 characters")
        return v


MAX_DEVICES_PER_REPLICA = 1024


class ReplicaShape(FileModel):
    """What one replica is: how many devices of one kind, split how (tensor, pipeline and data parallel ranks,
    where known: their product divides the devices, and equals it when all three are known), and how that is
    known. Cost, power and capacity are per replica."""

    devices: int = Field(ge=1, le=MAX_DEVICES_PER_REPLICA)
    tensor_parallel: int | None = Field(default=None, ge=1, le=MAX_DEVICES_PER_REPLICA)
    pipeline_parallel: int | None = Field(default=None, ge=1, le=MAX_DEVICES_PER_REPLICA)
    data_parallel: int | None = Field(default=None, ge=1, le=MAX_DEVICES_PER_REPLICA)
    source: str = Field(
        max_length=300, description="how the shape is known: engine parameters, import options"
    )

    @model_validator(mode="after")
    def _ranks(self) -> ReplicaShape:
        known = [
            n for n in (self.tensor_parallel, self.pipeline_parallel, self.data_parallel) if n is not None
        ]
        ranks = 1
        for n in known:
            ranks *= n
        if self.devices % ranks or (len(known) == 3 and ranks != self.devices):
            raise ValueError(
                f"{self.devices} devices per replica cannot hold tensor {self.tensor_parallel or '?'} x pipeline "
                f"{self.pipeline_parallel or '?'} x data {self.data_parallel or '?'} parallel ranks"
            )
        return self

    def label(self) -> str:
        """'8 devices (TP 8)', '1 device'."""
        ranks = (("TP", self.tensor_parallel), ("PP", self.pipeline_parallel), ("DP", self.data_parallel))
        split = [f"{name} {n}" for name, n in ranks if n is not None and n > 1]
        plural = "s" if self.devices > 1 else ""
        return f"{self.devices} device{plural}" + (f" ({', '.join(split)})" if split else "")


ONE_DEVICE = ReplicaShape(devices=1, source="one device: no parallelism was given or reported")


class LlmFacts(FileModel):
    """Run-level facts of an LLM run: the model, its memory, energy per phase and the engine it ran in."""

    shape: ModelShape | None = Field(description="null: an engine run that does not know the model's sizes")
    weights: Literal["random", "loaded", "served"] = Field(
        description="random: a dense model's speed does not depend on its weights, so no quality proxy is "
        "meaningful beyond numerics; loaded: weights from a local folder; served: whatever the engine holds"
    )
    weights_note: str = Field(max_length=1000)
    memory_fraction: float = Field(gt=0, le=1, description="share of device memory the engine may use")
    device_memory_bytes: int | Unavailable
    device_memory_method: str = Field(max_length=300)
    memory: list[MemoryFacts] = Field(default_factory=list, max_length=16)
    energy: list[PhaseEnergy] = Field(default_factory=list, max_length=64)
    energy_note: str | None = Field(default=None, max_length=1000, description="why energy is unavailable")
    engine: EngineInfo | None = None
    replica: ReplicaShape | None = Field(
        default=None, description="devices per replica and their parallelism; null: one device (not recorded)"
    )
