"""The engine benchmark evidence file: results a user already has from `vllm bench serve`, GuideLLM or AIPerf,
converted into one versioned, content-addressed format that fleetwise can check its predictions against and
size from.

What the tool said is kept with the tool's own field names beside each value (`fields`); what the file does
not say is "unknown", never guessed. The id is the sha256 of the canonical JSON of every field except `id` and
`imported_at`, so importing the same result twice gives the same file.

Schema history: 1 - first version.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from measure.datafile import DataFileError, parse_json, read_regular_file
from measure.run import CreatedAt, atomic_write_text, format_validation_error

MAX_BENCHMARK_BYTES = 64 * 1024 * 1024
MAX_LEVELS = 256
MAX_REQUESTS_PER_LEVEL = 200_000
Tool = Literal["vllm-bench-serve", "guidellm", "aiperf"]
UNKNOWN = "unknown"


class BenchmarkFileError(ValueError):
    """A benchmark file that cannot be recognised, converted or read; one line naming the problem."""


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False, extra="forbid")


class Stat(_Out):
    """A metric's summary as the tool reported it (ms for latencies, tokens for lengths); absent: not reported."""

    mean: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    count: int | None = None


class BenchRequest(_Out):
    """One request as the tool recorded it (when saved per request)."""

    start_s: float | None = Field(description="send time from the level's first request (s)")
    prompt_tokens: int | None = Field(ge=0)
    output_tokens: int | None = Field(ge=0)
    ttft_ms: float | None = Field(ge=0)
    e2e_ms: float | None = Field(ge=0)
    ok: bool


class BenchLevel(_Out):
    """One traffic setting of the benchmark and what was measured under it."""

    label: str = Field(max_length=200)
    traffic: Literal["rate", "concurrency", "throughput", "synchronous", "unknown"]
    arrivals: Literal["poisson", "constant", "gamma", "unknown"]
    rate_rps: float | None = Field(default=None, gt=0)
    concurrency: int | None = Field(default=None, gt=0)
    duration_s: float | None = Field(default=None, ge=0)
    completed: int = Field(ge=0)
    failed: int | None = Field(default=None, ge=0)
    request_rps: float | None = Field(default=None, ge=0)
    output_tokens_per_s: float | None = Field(default=None, ge=0)
    prompt_tokens: Stat | None = None
    output_tokens: Stat | None = None
    ttft: Stat | None = None
    tpot: Stat | None = None
    itl: Stat | None = None
    e2e: Stat | None = None
    requests: list[BenchRequest] = Field(default_factory=list, max_length=MAX_REQUESTS_PER_LEVEL)
    fields: dict[str, str] = Field(description="our name -> the tool's field it came from")


class EngineBenchmark(_Out):
    """An imported engine benchmark: source tool, model, engine, hardware as given, and its levels."""

    schema_version: Literal[1] = 1
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
    imported_at: CreatedAt
    notes: list[str] = Field(default_factory=list, max_length=64)
    levels: list[BenchLevel] = Field(min_length=1, max_length=MAX_LEVELS)

    def content_id(self) -> str:
        data = self.model_dump(mode="json", exclude={"id", "imported_at"})
        canon = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()

    def with_id(self) -> EngineBenchmark:
        return self.model_copy(update={"id": self.content_id()})

    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]


def benchmark_filename(b: EngineBenchmark) -> str:
    """bench-<tool>-<short id>.json."""
    return f"bench-{b.tool}-{b.short_id()}.json"


def save_benchmark(b: EngineBenchmark, folder: str | Path) -> Path:
    """Set the content id and write the file atomically into folder."""
    b = b.with_id()
    text = json.dumps(b.model_dump(mode="json"), indent=1, allow_nan=False) + "\n"
    return atomic_write_text(Path(folder) / benchmark_filename(b), text)


def parse_benchmark(data: object, where: str) -> EngineBenchmark:
    """An engine benchmark from parsed JSON; its id must match its content."""
    try:
        b = EngineBenchmark.model_validate(data)
    except ValidationError as exc:
        raise BenchmarkFileError(
            f"{where}: invalid engine benchmark file: {format_validation_error(exc)}"
        ) from None
    if b.id != b.content_id():
        raise BenchmarkFileError(f"{where}: the id does not match the content (edited after import?)")
    return b


def load_benchmark(path: str | Path) -> EngineBenchmark:
    """Read and check an engine benchmark file (bounded, JSON only)."""
    p = Path(path)
    try:
        data = parse_json(read_regular_file(p, MAX_BENCHMARK_BYTES, "engine benchmark file"), str(p))
    except DataFileError as exc:
        raise BenchmarkFileError(str(exc)) from None
    return parse_benchmark(data, str(p))
