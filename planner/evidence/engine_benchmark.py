"""The engine benchmark evidence file: results a user already has from `vllm bench serve`, GuideLLM or AIPerf,
converted into one versioned, content-addressed format that fleetwise can check its predictions against and
size from.

What the tool said is kept with the tool's own field names beside each value (`fields`); what the file does
not say is "unknown", never guessed. The id is the sha256 of the canonical JSON of every field except `id` and
`imported_at`, so importing the same result twice gives the same file.

Physical ranges are checked on every load and import (a file is evidence only if it could have been
measured): latencies 0..1 h and percentiles in order, token counts up to 1,048,576 a request, rates and
throughputs bounded, at most MAX_REQUESTS_PER_FILE per-request records in a file (so what import writes its
own loader reads), and per-request samples that agree with the summary the tool stated beside them.

Schema history: 1 - first version.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from measure.run import MAX_LATENCY_MS, MAX_SEQ_LEN, CreatedAt, ReplicaShape, format_validation_error
from measure.run.types import FileModel as _Out
from measure.run.versioned import VersionedFile, canonical_id
from planner.traffic.scenario import MAX_DURATION_S, MAX_RATE_RPS, MIN_RATE_RPS

MAX_BENCHMARK_BYTES = 64 * 1024 * 1024
MAX_LEVELS = 256
MAX_REQUESTS_PER_LEVEL = 200_000
MAX_REQUESTS_PER_FILE = 200_000  # ~30 MB written: always under the 64 MiB read cap, whatever the levels
MAX_TOKENS_PER_S = 1e9
SAMPLE_RATIO = 2.0  # samples whose median is off the stated p50 by more than this factor are not that level's
MIN_SAMPLES = 20
_LATENCIES = ("ttft", "tpot", "itl", "e2e")
Tool = Literal["vllm-bench-serve", "guidellm", "aiperf"]
UNKNOWN = "unknown"


class BenchmarkFileError(ValueError):
    """A benchmark file that cannot be recognised, converted or read; one line naming the problem."""


class Stat(_Out):
    """A metric's summary as the tool reported it (ms for latencies, tokens for lengths); absent: not reported."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    count: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Stat:
        if any(v < 0 for v in self._given()):
            raise ValueError("a negative value")
        pct = [v for v in (self.p50, self.p90, self.p95, self.p99) if v is not None]
        if any(b < a * (1 - 1e-9) for a, b in itertools.pairwise(pct)):
            raise ValueError(f"percentiles out of order ({', '.join(f'{v:g}' for v in pct)})")
        return self

    def _given(self) -> list[float]:
        return [v for v in (self.mean, self.p50, self.p90, self.p95, self.p99) if v is not None]

    def figures(self) -> dict[str, float]:
        """The statistics the tool reported, by name (mean, p50, p90, p95, p99): the absent ones left out."""
        return {
            k: float(v) for k in ("mean", "p50", "p90", "p95", "p99") if (v := getattr(self, k)) is not None
        }

    def top(self) -> float:
        """The largest figure the tool reported (0 when none)."""
        return max(self._given(), default=0.0)


class BenchRequest(_Out):
    """One request as the tool recorded it (when saved per request)."""

    start_s: float | None = Field(
        ge=0, le=MAX_DURATION_S, description="send time from the level's first request (s)"
    )
    prompt_tokens: int | None = Field(ge=0, le=MAX_SEQ_LEN)
    output_tokens: int | None = Field(ge=0, le=MAX_SEQ_LEN)
    ttft_ms: float | None = Field(ge=0, le=MAX_LATENCY_MS)
    e2e_ms: float | None = Field(ge=0, le=MAX_LATENCY_MS)
    ok: bool


class BenchLevel(_Out):
    """One traffic setting of the benchmark and what was measured under it."""

    label: str = Field(max_length=200)
    traffic: Literal["rate", "concurrency", "throughput", "synchronous", "unknown"]
    arrivals: Literal["poisson", "constant", "gamma", "unknown"]
    rate_rps: float | None = Field(default=None, ge=MIN_RATE_RPS, le=MAX_RATE_RPS)
    concurrency: int | None = Field(default=None, gt=0, le=1_000_000)
    duration_s: float | None = Field(default=None, ge=0, le=MAX_DURATION_S)
    completed: int = Field(ge=0, le=10**9)
    failed: int | None = Field(default=None, ge=0, le=10**9)
    request_rps: float | None = Field(default=None, ge=0, le=MAX_RATE_RPS)
    output_tokens_per_s: float | None = Field(default=None, ge=0, le=MAX_TOKENS_PER_S)
    prompt_tokens: Stat | None = None
    output_tokens: Stat | None = None
    ttft: Stat | None = None
    tpot: Stat | None = None
    itl: Stat | None = None
    e2e: Stat | None = None
    requests: list[BenchRequest] = Field(default_factory=list, max_length=MAX_REQUESTS_PER_LEVEL)
    fields: dict[str, str] = Field(description="our name -> the tool's field it came from")

    @model_validator(mode="after")
    def _physical(self) -> BenchLevel:
        if self.request_rps is not None and 0 < self.request_rps < MIN_RATE_RPS:
            raise ValueError(f"request throughput {self.request_rps:g} req/s is below {MIN_RATE_RPS:g}")
        for name in _LATENCIES:
            st = getattr(self, name)
            if st is not None and st.top() > MAX_LATENCY_MS:
                raise ValueError(f"{name} of {st.top():g} ms is over an hour")
        for name in ("prompt_tokens", "output_tokens"):
            st = getattr(self, name)
            if st is not None and st.top() > MAX_SEQ_LEN:
                raise ValueError(f"{name} of {st.top():g} is over {MAX_SEQ_LEN:,} tokens a request")
        for name, key in (("ttft", "ttft_ms"), ("e2e", "e2e_ms")):
            _agree(self, name, key)
        return self


class EngineBenchmark(_Out):
    """An imported engine benchmark: source tool, model, engine, hardware as given, and its levels."""

    schema_version: Literal[2] = 2
    kind: Literal["engine-benchmark"] = "engine-benchmark"
    id: str = Field(
        default="", description="sha256 of the canonical JSON of every field but id and imported_at"
    )
    tool: Tool
    tool_version: str = Field(max_length=200)
    tool_format: str = Field(max_length=300, description="the format recognised, e.g. GuideLLM report v2")
    source_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the file as the tool wrote it")
    model: str = Field(max_length=500)
    engine: str = Field(max_length=500)
    hardware: str = Field(max_length=500)
    replica: ReplicaShape = Field(description="what one replica of the benchmarked engine was")
    imported_at: CreatedAt
    notes: list[str] = Field(default_factory=list, max_length=64)
    levels: list[BenchLevel] = Field(min_length=1, max_length=MAX_LEVELS)

    @model_validator(mode="after")
    def _bounded(self) -> EngineBenchmark:
        n = sum(len(lv.requests) for lv in self.levels)
        if n > MAX_REQUESTS_PER_FILE:
            raise ValueError(f"{n:,} per-request records, over {MAX_REQUESTS_PER_FILE:,} in one file")
        return self

    def content_id(self) -> str:
        return content_id(self.model_dump(mode="json"))

    def with_id(self) -> EngineBenchmark:
        return self.model_copy(update={"id": self.content_id()})

    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]


_COUNT = re.compile(r"^\s*(\d{1,5})\s*(?:x|\u00d7|\*)\s*\S", re.IGNORECASE)


def replica_shape(
    hardware: str | None,
    devices: int | None = None,
    tensor_parallel: int | None = None,
    pipeline_parallel: int | None = None,
    data_parallel: int | None = None,
) -> ReplicaShape:
    """One replica of a benchmarked engine: the devices given, else the count that starts the hardware text
    ('8x NVIDIA H200'), else the product of the parallel ranks given, else one device. A count in the text that
    disagrees with the devices given is refused: which one is the replica would be a guess."""
    m = _COUNT.match(hardware or "")
    said = int(m.group(1)) if m else None
    ranks = [n for n in (tensor_parallel, pipeline_parallel, data_parallel) if n is not None]
    if devices is not None and said is not None and said != devices:
        raise BenchmarkFileError(
            f"the hardware text says {said} devices ({(hardware or '').strip()[:80]!r}) but --devices-per-replica "
            f"says {devices}: give one count"
        )
    if devices is not None:
        how = "given at import (--devices-per-replica)"
    elif said is not None:
        devices, how = said, f"the count in the hardware text {(hardware or '').strip()[:80]!r}"
    elif ranks:
        devices, how = int(np.prod(ranks)), "the parallel ranks given at import"
    else:
        devices, how = 1, "one device: the import named no count and no parallelism"
    try:
        return ReplicaShape(
            devices=devices,
            tensor_parallel=tensor_parallel,
            pipeline_parallel=pipeline_parallel,
            data_parallel=data_parallel,
            source=how,
        )
    except ValidationError as exc:
        raise BenchmarkFileError(f"replica shape: {format_validation_error(exc)}") from None


def _agree(level: BenchLevel, name: str, key: str) -> None:
    """The level's own samples must be the ones its stated median summarises (within SAMPLE_RATIO): a file
    whose summary says 1.5 ms and whose samples say an hour is two different measurements."""
    st = getattr(level, name)
    samples = [getattr(r, key) for r in level.requests if r.ok and getattr(r, key) is not None]
    if st is None or st.p50 is None or len(samples) < MIN_SAMPLES:
        return
    median = float(np.median(samples))
    lo, hi = sorted((median, st.p50))
    if hi > SAMPLE_RATIO * lo + 1.0:  # + 1 ms: sub-millisecond medians are timer noise
        raise ValueError(
            f"the per-request {name} samples (median {median:.4g} ms) disagree with the stated p50 "
            f"({st.p50:.4g} ms)"
        )


def benchmark_filename(b: EngineBenchmark) -> str:
    """bench-<tool>-<short id>.json."""
    return f"bench-{b.tool}-{b.short_id()}.json"


def content_id(data: dict[str, Any]) -> str:
    """sha256 of a benchmark's canonical JSON without its id and import time: the same for the model as
    written and for the dict read back from the file."""
    return canonical_id(data, ("id", "imported_at"))


def _id_matches(b: EngineBenchmark, stored: dict[str, Any]) -> str | None:
    # the id covers the file as stored (before migration), so a file keeps its identity as the format grows
    return None if b.id == content_id(stored) else "the id does not match the content (edited after import?)"


def _v1_to_v2(data: dict[str, object]) -> dict[str, object]:
    # Version 1 recorded no replica shape: the hardware text was all there was, read as one device
    one = "one device: imported before replica shapes were recorded (the hardware text was not read)"
    return {**data, "schema_version": 2, "replica": {"devices": 1, "source": one}}


BENCHMARK_FILE: VersionedFile[EngineBenchmark] = VersionedFile(
    EngineBenchmark,
    what="engine benchmark file",
    version=2,
    error=BenchmarkFileError,
    max_bytes=MAX_BENCHMARK_BYTES,
    filename=benchmark_filename,
    pattern="bench-*.json",
    migrations={1: _v1_to_v2},
    check=_id_matches,
    prepare=lambda b: b.with_id(),
)


def save_benchmark(b: EngineBenchmark, folder: str | Path) -> Path:
    """Set the content id and write the file atomically into folder, read back by load_benchmark first."""
    return BENCHMARK_FILE.save(b, folder)


def parse_benchmark(data: object, where: str) -> EngineBenchmark:
    """An engine benchmark from parsed JSON; its id must match its content."""
    return BENCHMARK_FILE.parse(data, where)


def load_benchmark(path: str | Path) -> EngineBenchmark:
    """Read and check an engine benchmark file (bounded, JSON only)."""
    return BENCHMARK_FILE.read(path)
