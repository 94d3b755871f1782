"""The run's building blocks: physical bounds, the schema version, Unavailable, and the context of a run
(methodology, stack, workload).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
)

SCHEMA_VERSION: Final = 9
METHODOLOGY_VERSION = 1
RAW_LATENCY_CAP = 2000
WARMUP_LATENCY_CAP = 500
MAX_RUN_FILE_BYTES = 64 * 1024 * 1024
# Physical ranges: what validates must also simulate. A latency above a nanosecond and below an hour; a batch
# a device can hold; a context no model has exceeded; rates and power no single device reaches.
MIN_LATENCY_MS: Final = 1e-6
MAX_LATENCY_MS: Final = 3_600_000.0
MAX_BATCH_SIZE: Final = 65_536
MAX_SEQ_LEN: Final = 1_048_576
MAX_ITEMS_PER_S: Final = 1e12
MAX_POWER_W: Final = 100_000.0
MAX_NAME_CHARS: Final = 128
FUTURE_SLACK: Final = timedelta(days=1)  # clocks drift; a run dated later than this is not evidence yet

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
PointStatus = Literal["ok", "oom", "unsupported", "unstable", "failed"]
Phase = Literal["prefill", "decode", "mixed"]
PHASES: tuple[str, ...] = ("prefill", "decode", "mixed")
PointSource = Literal["in-process", "engine"]
MAX_ERRORS_KEPT: Final = 20


class RunFileError(ValueError):
    """A run file that cannot be read, parsed, migrated or validated; the message names the problem."""


class FileModel(BaseModel):
    """The base of everything read from a file: immutable, finite numbers only, no field it does not know."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ResultModel(BaseModel):
    """The base of everything the planner computes and shows: immutable, finite numbers only."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)


class Unavailable(FileModel):
    """A value that could not be read, with the reason. Never replaced by a guess."""

    unavailable: str = Field(min_length=1, description="why the value could not be read")


def unavailable(reason: str) -> Unavailable:
    """Shorthand for an unavailable value."""
    return Unavailable(unavailable=reason)


MaybeStr = str | Unavailable
MaybeInt = int | Unavailable
MaybeFloat = float | Unavailable
NonNegFloat = Annotated[float, Field(ge=0, le=1e15)]
PosFloat = Annotated[float, Field(gt=0, le=1e15)]
LatencyMs = Annotated[float, Field(ge=MIN_LATENCY_MS, le=MAX_LATENCY_MS)]


def _not_in_future(t: datetime) -> datetime:
    if t > datetime.now(UTC) + FUTURE_SLACK:
        raise ValueError(f"{t.isoformat()} is in the future")
    return t


# when evidence was made: a naive time cannot be ordered against others, a future one is not evidence yet
CreatedAt = Annotated[
    AwareDatetime,
    AfterValidator(_not_in_future),
    Field(description="timezone-aware; not more than a day in the future"),
]
Watts = Annotated[float, Field(ge=0, le=MAX_POWER_W)]
ItemsPerS = Annotated[float, Field(gt=0, le=MAX_ITEMS_PER_S)]
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH_SIZE)]
SeqLen = Annotated[int, Field(gt=0, le=MAX_SEQ_LEN)]


class WarmupPolicy(FileModel):
    """How warm-up is excluded: a fixed minimum, then detection from the data."""

    min_excluded_iterations: int = Field(
        ge=0, le=10**6, description="always excluded (first calls, compilation)"
    )
    detection: Literal["mser-5", "first-requests"] = Field(
        default="mser-5",
        description="first-requests: an engine sweep drops the first requests of each setting",
    )
    detection_parameters: dict[str, float] = Field(default_factory=dict)
    compilation_excluded: bool = Field(description="compile/graph capture ran before any timed iteration")


class StoppingRule(FileModel):
    """Adaptive stopping: sample until the mean's CI is tight enough, within time and count limits."""

    ci_target_relative: PosFloat = Field(description="target 95% CI half-width of mean latency / mean")
    confidence: float = Field(gt=0, lt=1)
    ci_method: str
    min_iterations: int = Field(ge=2, le=10**9)
    max_iterations: int = Field(ge=2, le=10**9)
    min_seconds: float = Field(ge=0, le=86_400)  # a resumed run measures with these: a day per point at most
    max_seconds: float = Field(gt=0, le=86_400)


class Methodology(FileModel):
    """What was executed, what was counted and what was excluded, for every point of the run."""

    methodology_version: int = METHODOLOGY_VERSION
    warmup: WarmupPolicy
    stopping: StoppingRule
    timer: Literal["cuda-event", "perf_counter_ns+synchronize", "client-stream-arrival"]
    iteration_scope: Literal["device-compute", "end-to-end"] = Field(
        description="device-compute: inputs already on the device, forward pass only; end-to-end: "
        "host-to-device copy of inputs, forward, copy of outputs back and Python overhead"
    )
    l2_flush: bool = Field(description="L2 cache flushed before every timed iteration (GPU only)")
    percentile_method: str
    p99_ci_method: str
    drift_test: str
    raw_latency_policy: str
    inference_mode: str
    notes: list[str] = Field(default_factory=list)
    energy_policy: str | None = Field(
        default=None, description="how power and energy were measured; null in version-1 files"
    )


class Stack(FileModel):
    """The software and hardware the run executed on; anything unreadable is stored with the reason."""

    device: str = Field(description="torch device string, e.g. cpu or cuda:0")
    device_kind: Literal["cpu", "cuda"]
    device_name: str = Field(max_length=256)
    device_uuid: MaybeStr
    compute_capability: MaybeStr
    device_memory_bytes: MaybeInt
    driver_version: MaybeStr
    cuda_runtime: MaybeStr
    cudnn_version: MaybeStr
    torch_version: str
    torch_build: str
    torch_num_threads: int = Field(ge=0, le=65_536)
    compile_mode: str
    python_version: str
    numpy_version: str
    os: str
    kernel: str
    hostname: str
    cpu_model: str
    cpu_count_logical: int = Field(ge=0, le=65_536)
    cpu_count_usable: int = Field(ge=0, le=65_536)
    cpu_flags: list[str] = Field(description="ISA extensions relevant to numeric precision")
    cpu_governor: MaybeStr
    gpu_power_limit_w: MaybeFloat
    gpu_persistence_mode: MaybeStr
    gpu_ecc_mode: MaybeStr
    gpu_mig_mode: MaybeStr
    gpu_app_clock_sm_mhz: MaybeInt
    gpu_app_clock_mem_mhz: MaybeInt
    environment: dict[str, str] = Field(description="environment variables that change performance")


class Workload(FileModel):
    """What was executed: a named model with its parameters and the unit of work it serves."""

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    source: str = Field(
        pattern=r"^(builtin|[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*)$",
        max_length=256,
        description="'builtin' or the module:factory of a user workload: recorded, never imported from the file",
    )
    description: str
    parameters: dict[str, int | float | str | bool]
    unit: str = Field(min_length=1, description="unit of work: samples, tokens, images, ...")
    microbenchmark: bool = Field(description="true for kernels such as gemm: not a served model")
    has_seq_len: bool


def content_hash(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()
