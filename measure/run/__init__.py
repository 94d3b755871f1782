"""The run file: the contract between measuring and planning (pydantic models, JSON on disk).

A run is steady-state evidence with its context: how it was measured (methodology), on what (stack), doing
what (workload), and one point per (precision, batch size, sequence length). This module never imports
torch, so the planner and the app can read runs anywhere.

Schema history (bump SCHEMA_VERSION and add a migration in _MIGRATIONS for every change):
  1 - first version: methodology, stack, workload, sweep spec, points with latency summary, mean CI, p99
      order-statistic CI, bounded raw steady-state and warm-up latencies, drift verdict, clock summary.
  2 - telemetry: `Point.telemetry` (power mean/p95, energy per item and unit with method and window, SM and
      memory clocks, temperature, utilization, clock-event reasons), `Run.idle_power`, `Run.quality` (numeric
      proxy per precision against the fp32 reference) and `Run.soak` (per-window soak series and verdict).
      Migrating a version-1 file sets them to null: "not measured", which is different from "unavailable".
  3 - representative load: `Point.paced` (service time conditioned on the idle gap before each iteration, per
      gap bin, with its own stopping verdict and samples) and `Point.contention` (load average, steal and
      other processes' CPU share around the point; `contended` flag). Migrating a version-2 file sets both
      to null: "not measured" (such a run is optimistic under intermittent load, and the planner says so).
  4 - LLM serving: `Point.phase` (prefill / decode / mixed; null for batch points), `Point.context_tokens`,
      `Point.chunk_tokens`, `Point.source` (in-process / engine), `Point.engine` (a streaming engine's request
      counts, TTFT/TPOT/E2E, early ends, usage mismatches, errors); `SweepSpec.llm` (the LLM grid asked for) and
      `Run.llm` (model shape, weights, KV-cache bytes per token, weight bytes, KV tokens that fit, energy per
      phase, the engine's self-description). Migrating a version-3 file sets them to null: a batch run.

The id is the sha256 of the file's canonical JSON without `id`, verified against the content as stored (before
migration), so evidence keeps its identity when the model later gains fields.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from measure.run.datafile import DataFileError, one_line, parse_json, read_regular_file

SCHEMA_VERSION: Final = 4
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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Unavailable(_Model):
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


class WarmupPolicy(_Model):
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


class StoppingRule(_Model):
    """Adaptive stopping: sample until the mean's CI is tight enough, within time and count limits."""

    ci_target_relative: PosFloat = Field(description="target 95% CI half-width of mean latency / mean")
    confidence: float = Field(gt=0, lt=1)
    ci_method: str
    min_iterations: int = Field(ge=2, le=10**9)
    max_iterations: int = Field(ge=2, le=10**9)
    min_seconds: float = Field(ge=0, le=86_400)  # a resumed run measures with these: a day per point at most
    max_seconds: float = Field(gt=0, le=86_400)


class Methodology(_Model):
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


class Stack(_Model):
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


class Workload(_Model):
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


class LatencySummary(_Model):
    """Steady-state latency of one timed iteration (one batch), in milliseconds."""

    n: int = Field(ge=1, le=10**12)
    mean: LatencyMs
    median: LatencyMs
    p90: LatencyMs
    p95: LatencyMs
    p99: LatencyMs
    min: LatencyMs
    max: LatencyMs
    std: NonNegFloat
    mean_ci95_halfwidth: NonNegFloat | None = Field(description="null: fewer than 2 samples")
    mean_ci95_halfwidth_rel: NonNegFloat | None = Field(description="null: fewer than 2 samples")
    p99_ci95_low: LatencyMs | None = Field(description="null: too few samples to bound it")
    p99_ci95_high: LatencyMs | None = Field(description="null: too few samples to bound it (n < 368)")

    @model_validator(mode="after")
    def _ordered(self) -> LatencySummary:
        if not (self.min <= self.median <= self.p90 <= self.p95 <= self.p99 <= self.max):
            raise ValueError("latency percentiles must satisfy min <= median <= p90 <= p95 <= p99 <= max")
        return self


class DriftCheck(_Model):
    """Trend test on the steady window."""

    detected: bool
    p_value: float = Field(ge=0, le=1)
    relative_change: float
    reason: str


class ClockSummary(_Model):
    """Clocks across the steady window, read between sampling chunks (never inside a timed iteration)."""

    source: str
    readings: int = Field(ge=1)
    min_mhz: NonNegFloat
    max_mhz: NonNegFloat
    reasons_seen: list[str] = Field(description="clock-event (throttle) reasons seen, as NVML names them")


class PowerStats(_Model):
    """Power draw over a point's steady window, from the telemetry sampler."""

    mean_w: Watts
    p95_w: Watts
    max_w: Watts
    samples: int = Field(ge=1)


EnergyMethod = Literal["nvml-total-energy-counter", "rapl-energy-counter", "integrated-power-samples"]


class Energy(_Model):
    """Energy of a window of back-to-back iterations, read at device-synchronised chunk edges."""

    method: EnergyMethod
    domain: str = Field(description="what the figure covers, e.g. the whole GPU board or the CPU package(s)")
    window_s: PosFloat = Field(description="length of the window the energy was taken over")
    iterations: int = Field(ge=1, description="timed iterations completed inside the window")
    energy_j: NonNegFloat
    mean_power_w: Watts = Field(description="energy_j / window_s")
    energy_per_item_j: NonNegFloat
    energy_per_unit_j: NonNegFloat | None = Field(description="null when the workload has no unit count")
    busy_fraction: float = Field(
        ge=0, le=1.5, description="timed iteration time / window: gaps are host work"
    )
    quantization_rel: NonNegFloat | None = Field(
        description="bound on the relative error from the counter's update step (update period / window)"
    )
    extended: bool = Field(description="sampling ran past the latency stopping rule to lengthen this window")
    notes: list[str] = Field(default_factory=list)


class Stat(_Model):
    """Mean, minimum and maximum of a sampled quantity over a window."""

    mean: float
    min: float
    max: float


class PointTelemetry(_Model):
    """What the telemetry sampler and the energy counter saw over the point's steady window."""

    source: str
    sample_hz: PosFloat
    samples: int = Field(ge=0)
    power_w: PowerStats | Unavailable
    energy: Energy | Unavailable
    sm_clock_mhz: Stat | Unavailable
    mem_clock_mhz: Stat | Unavailable
    temperature_c: Stat | Unavailable
    utilization_gpu_pct: Stat | Unavailable = Field(
        description="recorded for context; never a performance figure (it counts time a kernel ran, not work)"
    )
    reasons_seen: list[str] = Field(description="clock-event reasons seen by the sampler, as NVML names them")


class Contention(_Model):
    """What else the machine did while the point was measured (from /proc, read before and after it)."""

    load1_before: NonNegFloat = Field(le=1e6)
    load1_after: NonNegFloat = Field(le=1e6)
    cpus: int = Field(ge=1, le=1_000_000)
    other_cpu_share: float = Field(ge=0, le=1, description="share of all CPU time used by other processes")
    steal_share: float = Field(ge=0, le=1, description="share of all CPU time the hypervisor took")
    contended: bool
    reason: str | None = Field(default=None, max_length=1000)


class PacedBin(_Model):
    """Service time of iterations that each started after an idle gap of about `gap_ms` (the bin's target)."""

    gap_ms: float = Field(gt=0, le=MAX_LATENCY_MS, description="idle time before each iteration (target)")
    gap_actual_ms: LatencySummary = Field(description="the idle gaps as they happened (sleep overshoots)")
    latency_ms: LatencySummary
    converged: bool
    stop_reason: str = Field(max_length=1000)
    elapsed_s: NonNegFloat
    sm_clock_mhz_at_start: Stat | Unavailable = Field(description="GPU SM clock read just before iterations")
    raw_latencies_ms: list[LatencyMs] = Field(default_factory=list, max_length=RAW_LATENCY_CAP)


class Paced(_Model):
    """Paced measurement of a point: the zero-gap bin is the point's own back-to-back samples."""

    mode: Literal["gaps", "load"]
    loads: list[float] | None = Field(
        default=None, max_length=64, description="load mode: each load's gap is the mean idle period s/load"
    )
    bins: list[PacedBin] = Field(min_length=1, max_length=64)

    @field_validator("bins")
    @classmethod
    def _increasing(cls, bins: list[PacedBin]) -> list[PacedBin]:
        gaps = [b.gap_ms for b in bins]
        if gaps != sorted(set(gaps)):
            raise ValueError("paced bins must have distinct gaps in increasing order")
        return bins


class EngineStats(_Model):
    """What a closed-loop sweep against a streaming server saw at one (concurrency, prompt, output) setting.

    Latencies run from the moment a request was sent; TTFT includes the HTTP round trip and tokenisation.
    """

    concurrency: int = Field(ge=1, le=MAX_BATCH_SIZE)
    prompt_tokens: SeqLen = Field(description="prompt length asked for, in the server's tokens (usage)")
    output_tokens: SeqLen = Field(description="max_tokens asked for")
    requests: int = Field(ge=0, le=10**9, description="requests sent")
    completed: int = Field(ge=0, le=10**9, description="streams that ended with the asked output length")
    early_ends: int = Field(
        ge=0, le=10**9, description="streams that ended before max_tokens (kept, counted)"
    )
    failed: int = Field(
        ge=0, le=10**9, description="time-outs, refused connections, HTTP errors, bad streams"
    )
    usage_mismatches: int = Field(
        ge=0, le=10**9, description="streams whose token chunks differ from the usage the server reported"
    )
    usage_missing: int = Field(ge=0, le=10**9, description="streams without a usage record")
    prompt_tokens_reported: int | None = Field(
        default=None, ge=0, le=MAX_SEQ_LEN, description="the server's usage.prompt_tokens (median)"
    )
    ttft_ms: LatencySummary | None = None
    tpot_ms: LatencySummary | None = Field(default=None, description="(E2E - TTFT) / (output tokens - 1)")
    e2e_ms: LatencySummary | None = None
    wall_s: NonNegFloat = Field(description="time from the first send to the last stream's end")
    errors: list[str] = Field(default_factory=list, max_length=MAX_ERRORS_KEPT)


PointKey = tuple[str, int, int | None, str | None, int | None, int | None]


class Point(_Model):
    """One measured configuration. Anything but `ok` carries a reason and no invented numbers."""

    precision: Precision
    batch_size: BatchSize
    seq_len: SeqLen | None = Field(default=None, description="sequence length; prefill: prompt tokens")
    phase: Phase | None = Field(
        default=None,
        description="LLM step kind: prefill (batch prompts of seq_len tokens into an empty cache), decode "
        "(one token for each of batch sequences over context_tokens cached), mixed (a decode batch plus a "
        "prefill chunk of chunk_tokens in one forward); null: a batch-serving point",
    )
    context_tokens: SeqLen | None = Field(
        default=None, description="decode and mixed: tokens cached per sequence"
    )
    chunk_tokens: SeqLen | None = Field(default=None, description="mixed: prefill tokens in the same forward")
    source: PointSource | None = Field(
        default=None, description="null or in-process: timed here; engine: a server"
    )
    engine: EngineStats | None = Field(
        default=None, description="engine points: the requests behind the samples"
    )
    status: PointStatus
    reason: str | None = None
    flags: list[str] = Field(
        default_factory=list, description="drift, clock-change, throttled, not-attempted: see methodology"
    )
    precision_notes: str | None = Field(default=None, description="what exactly ran in this precision")
    units_per_item: PosFloat | None = None
    flops_per_item: PosFloat | None = None
    warmup_iterations_excluded: int = Field(default=0, ge=0)
    measured_iterations: int = Field(default=0, ge=0)
    first_iteration_ms: LatencyMs | None = Field(default=None, description="includes compilation; excluded")
    elapsed_s: NonNegFloat = 0.0
    latency_ms: LatencySummary | None = None
    throughput_items_per_s: ItemsPerS | None = None
    throughput_units_per_s: PosFloat | None = None
    achieved_tflops: PosFloat | None = None
    peak_memory_bytes: MaybeInt | None = None
    drift: DriftCheck | None = None
    clocks: ClockSummary | Unavailable | None = Field(
        default=None, description="null for points not measured; unavailable with the reason where unreadable"
    )
    telemetry: PointTelemetry | Unavailable | None = Field(
        default=None, description="null: not measured (not run, or a version-1 file); unavailable: no sensor"
    )
    paced: Paced | None = Field(default=None, description="null: not measured (no --pacing, or version <= 2)")
    contention: Contention | Unavailable | None = Field(
        default=None, description="null: not measured (version <= 2); unavailable: /proc unreadable"
    )
    raw_latencies_ms: list[LatencyMs] = Field(default_factory=list, max_length=RAW_LATENCY_CAP)
    raw_latencies_stride: int = Field(default=1, ge=1, description="every k-th steady sample was kept")
    warmup_latencies_ms: list[LatencyMs] = Field(default_factory=list, max_length=WARMUP_LATENCY_CAP)

    @model_validator(mode="after")
    def _consistent(self) -> Point:
        measured = self.status in ("ok", "unstable")
        if self.status != "ok" and not self.reason:
            raise ValueError(f"a point with status {self.status!r} needs a reason")
        if measured and (self.latency_ms is None or self.throughput_items_per_s is None):
            raise ValueError(f"a point with status {self.status!r} needs latency_ms and throughput")
        if not measured and (self.latency_ms is not None or self.raw_latencies_ms):
            raise ValueError(f"a point with status {self.status!r} must not carry measurements")
        need = {
            None: (False, False, False),
            "prefill": (True, False, False),
            "decode": (False, True, False),
            "mixed": (False, True, True),
        }[self.phase]
        have = (self.seq_len is not None, self.context_tokens is not None, self.chunk_tokens is not None)
        if self.phase is not None and have != need:
            names = ("seq_len", "context_tokens", "chunk_tokens")
            raise ValueError(
                f"a {self.phase} point needs exactly "
                + ", ".join(n for n, w in zip(names, need, strict=True) if w)
            )
        if self.phase is None and (have[1] or have[2]):
            raise ValueError("context_tokens and chunk_tokens belong to LLM points (set phase)")
        if self.engine is not None and self.source != "engine":
            raise ValueError("engine statistics belong to points with source 'engine'")
        return self

    @property
    def key(self) -> PointKey:
        """Identity of the point inside a run."""
        return (
            self.precision,
            self.batch_size,
            self.seq_len,
            self.phase,
            self.context_tokens,
            self.chunk_tokens,
        )

    @property
    def tokens_per_step(self) -> int | None:
        """Tokens one timed iteration processes: prefill batch x prompt, decode batch, mixed batch + chunk."""
        if self.phase == "prefill":
            return self.batch_size * (self.seq_len or 0)
        if self.phase == "decode":
            return self.batch_size
        if self.phase == "mixed":
            return self.batch_size + (self.chunk_tokens or 0)
        return None


class IdlePower(_Model):
    """The device's draw while idle (context created, nothing queued): the planner charges idle replicas it."""

    method: EnergyMethod
    domain: str
    window_s: PosFloat
    power_w: Watts
    samples: int = Field(ge=0)
    temperature_c: MaybeFloat | None = None
    counter_update_ms: PosFloat | None = Field(
        default=None, description="measured update period of the energy counter; sets the energy windows"
    )


QualityStatus = Literal["ok", "nonfinite", "unsupported"]


class QualityProxy(_Model):
    """Numeric error of one precision against the fp32 reference on identical inputs: a proxy, not accuracy."""

    precision: Precision
    seq_len: SeqLen | None = None
    status: QualityStatus
    reason: str | None = None
    items: int = Field(ge=1)
    rel_l2_error: NonNegFloat | None = None
    cosine_similarity_mean: float | None = Field(default=None, ge=-1.0001, le=1.0001)
    cosine_similarity_min: float | None = Field(default=None, ge=-1.0001, le=1.0001)
    max_abs_error: NonNegFloat | None = None
    top1_agreement: float | None = Field(
        default=None, ge=0, le=1, description="null when the workload has no classification head"
    )

    @model_validator(mode="after")
    def _consistent(self) -> QualityProxy:
        if self.status != "ok" and not self.reason:
            raise ValueError(f"a quality entry with status {self.status!r} needs a reason")
        if self.status == "ok" and (self.rel_l2_error is None or self.cosine_similarity_mean is None):
            raise ValueError("an ok quality entry needs rel_l2_error and cosine_similarity_mean")
        return self


class Quality(_Model):
    """The numeric-quality proxy of every precision in the run, and how it was computed."""

    reference: str
    inputs: str
    entries: list[QualityProxy]


class SoakWindow(_Model):
    """One time window of a soak: throughput, latency percentiles and telemetry over that window."""

    start_s: NonNegFloat
    end_s: PosFloat
    iterations: int = Field(ge=1)
    throughput_items_per_s: ItemsPerS
    latency_p50_ms: LatencyMs
    latency_p90_ms: LatencyMs
    latency_p99_ms: LatencyMs
    power_mean_w: Watts | None = None
    energy_per_item_j: NonNegFloat | None = None
    sm_clock_mean_mhz: NonNegFloat | None = None
    sm_clock_min_mhz: NonNegFloat | None = None
    temperature_max_c: float | None = None
    reasons_seen: list[str] = Field(default_factory=list)


class SoakComparison(_Model):
    """Early windows against the rest for one quantity: medians, relative change, rank test."""

    quantity: str
    early_median: float
    rest_median: float
    relative_change: float = Field(description="(rest - early) / early")
    p_value: float | None = Field(
        ge=0, le=1, description="two-sided Mann-Whitney U; null with < 2 windows a side"
    )
    significant: bool


class Soak(_Model):
    """A long single-point run cut into windows, and whether the first minutes differ from the rest."""

    duration_s: PosFloat
    window_s: PosFloat
    early_s: PosFloat = Field(description="windows starting before this are 'early' (peak), the rest steady")
    windows: list[SoakWindow] = Field(min_length=1)
    comparisons: list[SoakComparison]
    verdict: str


SizeList = Annotated[list[SeqLen], Field(max_length=64)]


class LlmGrid(_Model):
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


class SweepSpec(_Model):
    """The sweep that was asked for, so an interrupted run can be resumed and its gaps seen."""

    precisions: list[Precision] = Field(min_length=1)
    batch_sizes: list[BatchSize] = Field(min_length=1, max_length=4096)
    seq_lens: list[SeqLen] | None = Field(default=None, max_length=4096)
    complete: bool = Field(description="false when interrupted before every point was measured")
    pacing: str | None = Field(
        default=None, max_length=200, description="the --pacing asked for (gaps=... or load=...); null: none"
    )
    llm: LlmGrid | None = Field(default=None, description="LLM runs: the grid asked for; null: a batch sweep")


Count = Annotated[int, Field(ge=1, le=10**15)]


class ModelShape(_Model):
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


class MemoryFacts(_Model):
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


class PhaseEnergy(_Model):
    """Energy per token of one phase at one precision: the median over that phase's measured points."""

    precision: Precision
    phase: Phase
    j_per_token: NonNegFloat | Unavailable
    points: int = Field(ge=0, description="points the median is over")
    range_j: tuple[NonNegFloat, NonNegFloat] | None = Field(default=None, description="min and max over them")


ParamScalar = str | int | float | bool


class EngineInfo(_Model):
    """What a serving engine says about itself, and what the user told us about it."""

    url: str = Field(max_length=500, description="the base URL traffic went to")
    model: str = Field(max_length=500)
    served_models: list[str] | Unavailable = Field(description="ids from GET /v1/models")
    version: str | Unavailable = Field(description="GET /version when the server has one")
    params: dict[str, ParamScalar] = Field(
        default_factory=dict, description="--engine-param key=value as given: engine, max_num_seqs, ..."
    )

    @field_validator("params")
    @classmethod
    def _few(cls, v: dict[str, ParamScalar]) -> dict[str, ParamScalar]:
        if len(v) > 64 or any(len(k) > 100 or (isinstance(x, str) and len(x) > 500) for k, x in v.items()):
            raise ValueError("at most 64 engine params, keys up to 100 and values up to 500 characters")
        return v


class LlmFacts(_Model):
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


class Run(_Model):
    """A measured run: context plus points; `id` is the hash of everything else (content-addressed)."""

    schema_version: Literal[4] = SCHEMA_VERSION
    id: str = Field(default="", description="sha256 of the canonical JSON of every other field")
    created_at: CreatedAt
    fleetwise_version: str
    command: list[str]
    methodology: Methodology
    stack: Stack
    workload: Workload
    sweep: SweepSpec
    points: list[Point]
    idle_power: IdlePower | Unavailable | None = Field(
        default=None, description="null: not measured (version-1 file or skipped); unavailable: no sensor"
    )
    quality: Quality | None = Field(default=None, description="null: not measured (version-1 file)")
    soak: Soak | None = Field(default=None, description="present on soak runs only")
    llm: LlmFacts | None = Field(default=None, description="LLM runs only: model, memory, energy per phase")

    @property
    def is_llm(self) -> bool:
        """Prefill/decode step evidence rather than batch-serving curves."""
        return self.llm is not None or any(p.phase is not None for p in self.points)

    @field_validator("points")
    @classmethod
    def _unique_points(cls, points: list[Point]) -> list[Point]:
        seen: set[PointKey] = set()
        for p in points:
            if p.key in seen:
                raise ValueError(f"duplicate point {p.key}")
            seen.add(p.key)
        return points

    def content_id(self) -> str:
        """sha256 over the canonical JSON of the run without its id (equal to the id of the file it writes)."""
        return content_hash(self.model_dump(mode="json", exclude={"id"}))

    def with_id(self) -> Run:
        """This run with `id` set from its content."""
        return self.model_copy(update={"id": self.content_id()})

    def short_id(self) -> str:
        """The first 12 hex digits of the id, for file names and tables."""
        return self.id.removeprefix("sha256:")[:12]


def content_hash(data: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace, UTF-8)."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 measured no telemetry, idle power, quality or soak: null says "not measured", never zero.
    points = [{**p, "telemetry": None} if isinstance(p, dict) else p for p in data.get("points", [])]
    return {**data, "schema_version": 2, "points": points, "idle_power": None, "quality": None, "soak": None}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    # Version 2 measured back to back only and recorded no contention: null says "not measured".
    points = [
        {**p, "paced": None, "contention": None} if isinstance(p, dict) else p for p in data.get("points", [])
    ]
    return {**data, "schema_version": 3, "points": points}


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    # Version 3 knew batch serving only: every point is a batch point measured in-process, no LLM facts.
    sweep = data.get("sweep")
    return {
        **data,
        "schema_version": 4,
        "sweep": {**sweep, "llm": None} if isinstance(sweep, dict) else sweep,
        "llm": None,
    }


# version -> function turning a dict of that version into a dict of the next version
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
}


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a run dict of any known older schema version to SCHEMA_VERSION."""
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunFileError("schema_version is missing or not an integer")
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"schema_version {version} is newer than this fleetwise understands ({SCHEMA_VERSION}); upgrade"
        )
    while version < SCHEMA_VERSION:
        step = _MIGRATIONS.get(version)
        if step is None:
            raise RunFileError(f"schema_version {version} is not a known run format version")
        data = step(data)
        version = int(data["schema_version"])
    return data


def format_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """Pydantic's field-level errors in one line: 'points.0.batch_size: Input should be greater than 0; ...'."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(one_line(f"{loc}: {err['msg']}", 200))
    more = f" (+{exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more


def parse_run(text: str | bytes, *, verify_id: bool = True) -> Run:
    """Parse, migrate and validate run JSON strictly (measure.run.datafile); raise RunFileError naming the problem."""
    if len(text) > MAX_RUN_FILE_BYTES:
        raise RunFileError(f"run file is {len(text):,} bytes, over the {MAX_RUN_FILE_BYTES:,} byte limit")
    try:
        data = parse_json(text, "run file")
    except DataFileError as exc:
        raise RunFileError(str(exc).removeprefix("run file: ")) from None
    if not isinstance(data, dict):
        raise RunFileError("a run file must hold a JSON object")
    # The id covers the content as stored, before migration: a file keeps verifying after the model
    # gains fields, and a run copied between machines keeps its identity.
    stored_id, content = data.get("id"), {k: v for k, v in data.items() if k != "id"}
    expected = content_hash(content) if verify_id else ""
    try:
        data = migrate(data)
        run = Run.model_validate(data)
    except ValidationError as exc:
        raise RunFileError(f"invalid run: {format_validation_error(exc)}") from None
    except (TypeError, AttributeError, KeyError) as exc:  # a migration meeting a malformed older file
        raise RunFileError(f"invalid run: malformed for its schema_version ({type(exc).__name__})") from None
    if verify_id and stored_id != expected:
        raise RunFileError(f"content id mismatch: file says {stored_id or '(empty)'}, content is {expected}")
    return run


def load_run(path: str | Path) -> Run:
    """Read and validate a run file (a regular file, at most MAX_RUN_FILE_BYTES)."""
    p = Path(path)
    try:
        raw = read_regular_file(p, MAX_RUN_FILE_BYTES, "run file")
    except DataFileError as exc:
        raise RunFileError(str(exc)) from None
    try:
        return parse_run(raw)
    except RunFileError as exc:
        raise RunFileError(f"{p}: {exc}") from None


def dump_run(run: Run) -> str:
    """Pretty JSON for a run whose id is set from its content."""
    if run.id != run.content_id():
        run = run.with_id()
    return json.dumps(run.model_dump(mode="json"), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def atomic_write_text(path: str | Path, text: str, check: Callable[[Path], object] | None = None) -> Path:
    """Write text to path via a temp file in the same folder and a rename: never a half-written file.

    `check` (an evidence file's own loader) reads the temp file before the rename and may refuse it: what
    fleetwise writes it can always read back. The file gets the permissions the umask gives a new file (as
    any editor would), not mkstemp's 0600.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name[:200]}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if check is not None:
            check(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


class OutputPathError(ValueError):
    """An output folder or file that cannot be written; checked before any work starts."""


def check_output_dir(folder: str | Path) -> Path:
    """Create folder if needed and prove a file can be created in it (a probe file, removed at once)."""
    p = Path(folder)
    try:
        p.mkdir(parents=True, exist_ok=True)
        if not p.is_dir():
            raise OutputPathError(f"output folder {p} is not a folder")
        probe = p / f".fleetwise-write-probe-{secrets.token_hex(6)}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(f"output folder {p} is not writable: {exc.strerror or exc}") from None
    return p


def check_output_file(path: str | Path) -> Path:
    """An output file path whose folder is writable and which is not itself a folder."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"output {p} is a folder, not a file")
    check_output_dir(p.parent if str(p.parent) else Path("."))
    return p


def run_filename(run: Run) -> str:
    """A readable, unique file name: workload, device kind, UTC date and the short content id."""
    stamp = run.created_at.strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in run.workload.name)[:64]
    return f"{safe}-{run.stack.device_kind}-{stamp}-{run.short_id()}.json"


def save_run(run: Run, folder: str | Path) -> Path:
    """Set the content id and write the run atomically into folder; returns the path."""
    run = run.with_id()
    text = dump_run(run)
    return atomic_write_text(Path(folder) / run_filename(run), text, check=load_run)


def run_json_schema() -> dict[str, Any]:
    """The JSON Schema of the run file."""
    return Run.model_json_schema()
