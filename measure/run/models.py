"""The run itself, and what it carries beside its points: idle power, quality proxies, soak, sweep spec."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from measure.run.llm_facts import LlmFacts, LlmGrid
from measure.run.points import EnergyMethod, Point, PointKey
from measure.run.types import (
    SCHEMA_VERSION,
    BatchSize,
    CreatedAt,
    FileModel,
    ItemsPerS,
    LatencyMs,
    MaybeFloat,
    Methodology,
    NonNegFloat,
    PosFloat,
    Precision,
    SeqLen,
    Stack,
    Unavailable,
    Watts,
    Workload,
    content_hash,
)


class IdlePower(FileModel):
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


class QualityProxy(FileModel):
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


class Quality(FileModel):
    """The numeric-quality proxy of every precision in the run, and how it was computed."""

    reference: str
    inputs: str
    entries: list[QualityProxy]


class SoakWindow(FileModel):
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


class SoakComparison(FileModel):
    """Early windows against the rest for one quantity: medians, relative change, rank test."""

    quantity: str
    early_median: float
    rest_median: float
    relative_change: float = Field(description="(rest - early) / early")
    p_value: float | None = Field(
        ge=0, le=1, description="two-sided Mann-Whitney U; null with < 2 windows a side"
    )
    significant: bool


class Soak(FileModel):
    """A long single-point run cut into windows, and whether the first minutes differ from the rest."""

    duration_s: PosFloat
    window_s: PosFloat
    early_s: PosFloat = Field(description="windows starting before this are 'early' (peak), the rest steady")
    windows: list[SoakWindow] = Field(min_length=1)
    comparisons: list[SoakComparison]
    verdict: str


class SweepSpec(FileModel):
    """The sweep that was asked for, so an interrupted run can be resumed and its gaps seen."""

    precisions: list[Precision] = Field(min_length=1)
    batch_sizes: list[BatchSize] = Field(min_length=1, max_length=4096)
    seq_lens: list[SeqLen] | None = Field(default=None, max_length=4096)
    complete: bool = Field(description="false when interrupted before every point was measured")
    pacing: str | None = Field(
        default=None, max_length=200, description="the --pacing asked for (gaps=... or load=...); null: none"
    )
    llm: LlmGrid | None = Field(default=None, description="LLM runs: the grid asked for; null: a batch sweep")


class Run(FileModel):
    """A measured run: context plus points; `id` is the hash of everything else (content-addressed)."""

    schema_version: Literal[9] = SCHEMA_VERSION
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
