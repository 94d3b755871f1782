"""A measured point: latency summary, drift and clocks, power and energy, pacing, contention, engine stats."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from measure.run.types import (
    MAX_BATCH_SIZE,
    MAX_ERRORS_KEPT,
    MAX_LATENCY_MS,
    MAX_SEQ_LEN,
    RAW_LATENCY_CAP,
    WARMUP_LATENCY_CAP,
    BatchSize,
    FileModel,
    ItemsPerS,
    LatencyMs,
    MaybeInt,
    NonNegFloat,
    Phase,
    PointSource,
    PointStatus,
    PosFloat,
    Precision,
    SeqLen,
    Unavailable,
    Watts,
)


class LatencySummary(FileModel):
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


class DriftCheck(FileModel):
    """Trend test on the steady window."""

    detected: bool
    p_value: float = Field(ge=0, le=1)
    relative_change: float
    reason: str


class ClockSummary(FileModel):
    """Clocks across the steady window, read between sampling chunks (never inside a timed iteration)."""

    source: str
    readings: int = Field(ge=1)
    min_mhz: NonNegFloat
    max_mhz: NonNegFloat
    reasons_seen: list[str] = Field(description="clock-event (throttle) reasons seen, as NVML names them")


class PowerStats(FileModel):
    """Power draw over a point's steady window, from the telemetry sampler."""

    mean_w: Watts
    p95_w: Watts
    max_w: Watts
    samples: int = Field(ge=1)


EnergyMethod = Literal["nvml-total-energy-counter", "rapl-energy-counter", "integrated-power-samples"]


class Energy(FileModel):
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


class Stat(FileModel):
    """Mean, minimum and maximum of a sampled quantity over a window."""

    mean: float
    min: float
    max: float


class PointTelemetry(FileModel):
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


class Contention(FileModel):
    """What else the machine did while the point was measured (from /proc, read before and after it)."""

    load1_before: NonNegFloat = Field(le=1e6)
    load1_after: NonNegFloat = Field(le=1e6)
    cpus: int = Field(ge=1, le=1_000_000)
    other_cpu_share: float = Field(ge=0, le=1, description="share of all CPU time used by other processes")
    steal_share: float = Field(ge=0, le=1, description="share of all CPU time the hypervisor took")
    contended: bool
    reason: str | None = Field(default=None, max_length=1000)


class PacedBin(FileModel):
    """Service time of iterations that each started after an idle gap of about `gap_ms` (the bin's target)."""

    gap_ms: float = Field(gt=0, le=MAX_LATENCY_MS, description="idle time before each iteration (target)")
    gap_actual_ms: LatencySummary = Field(description="the idle gaps as they happened (sleep overshoots)")
    latency_ms: LatencySummary
    converged: bool
    stop_reason: str = Field(max_length=1000)
    elapsed_s: NonNegFloat
    sm_clock_mhz_at_start: Stat | Unavailable = Field(description="GPU SM clock read just before iterations")
    raw_latencies_ms: list[LatencyMs] = Field(default_factory=list, max_length=RAW_LATENCY_CAP)


class Paced(FileModel):
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


Count = Annotated[float, Field(ge=0, le=1e18, allow_inf_nan=False)]


class EngineCounters(FileModel):
    """What the engine itself counted between two readings of its Prometheus /metrics: as a closed-loop
    setting's steady window opened and closed (schema 7; schema 6: before and after the whole setting, warm-up
    and drain included), or around a validation level. Counter differences, and the gauges at the second
    reading. Absent: not exposed."""

    source: str = Field(max_length=200, description="where the counters were read, e.g. vllm /metrics")
    seconds: NonNegFloat | None = Field(
        default=None,
        description="time between the two readings (steps / seconds is the engine's step rate); null: not kept",
    )
    requests_sent: int = Field(ge=0, le=10**9, description="requests the client sent between the two scrapes")
    prompt_tokens: Count | None = None
    generation_tokens: Count | None = None
    steps: Count | None = Field(default=None, description="engine steps (iteration_tokens_total count)")
    step_tokens: Count | None = Field(default=None, description="tokens over those steps (its sum)")
    step_tokens_histogram: dict[str, Count] = Field(
        default_factory=dict, max_length=256, description="steps with at most `le` tokens (cumulative)"
    )
    preemptions: Count | None = None
    prefix_cache_queries: Count | None = None
    prefix_cache_hits: Count | None = None
    running_at_end: Count | None = None
    waiting_at_end: Count | None = None
    kv_cache_usage_at_end: float | None = Field(default=None, ge=0, le=1)
    notes: list[str] = Field(default_factory=list, max_length=16)


class EngineStats(FileModel):
    """What a closed-loop sweep against a streaming server saw at one (concurrency, prompt, output) setting.

    Latencies run from the moment a request was sent; TTFT includes the HTTP round trip and tokenisation.
    """

    concurrency: int = Field(ge=1, le=MAX_BATCH_SIZE)
    prompt_tokens: SeqLen = Field(description="prompt length asked for, in the server's tokens (usage)")
    output_tokens: SeqLen = Field(description="max_tokens asked for")
    requests: int = Field(ge=0, le=10**9, description="requests measured (the steady window's)")
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
    steady_s: NonNegFloat | None = Field(
        default=None,
        description="the steady window: from the warm-up's last end to the last send; the requests counted were "
        "sent and ended inside it (null: schema 6, counted from the warm-up to the end, drain included)",
    )
    edge_excluded: int | None = Field(
        default=None,
        ge=0,
        le=10**9,
        description="requests after the warm-up left out for being in flight as the window opened or closed",
    )
    errors: list[str] = Field(default_factory=list, max_length=MAX_ERRORS_KEPT)
    counters: EngineCounters | None = Field(
        default=None, description="the engine's own counters over the setting; null: it exposes none"
    )


PointKey = tuple[str, int, int | None, str | None, int | None, int | None, int | None]


class Point(FileModel):
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
    cached_tokens: int | None = Field(
        default=None,
        ge=0,
        le=MAX_SEQ_LEN,
        description="prefill: prompt tokens before seq_len that the engine had cached (found by its prefix "
        "cache, not computed); null: none",
    )
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
        if self.cached_tokens is not None and self.phase != "prefill":
            raise ValueError("cached_tokens belongs to prefill points")
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
            self.cached_tokens,
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
