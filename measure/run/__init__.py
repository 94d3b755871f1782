"""The run file: the contract between measuring and planning (pydantic models, JSON on disk).

A run is steady-state evidence with its context: how it was measured (methodology), on what (stack), doing
what (workload), and one point per (precision, batch size, sequence length). This module never imports
torch, so the planner and the app can read runs anywhere.

Schema history (bump SCHEMA_VERSION in types.py and add a migration in format.py's _MIGRATIONS for
every change):
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
  5 - replica shape: `Run.llm.replica` (devices per replica, tensor/pipeline/data parallel ranks, how known).
      Migrating a version-4 file sets it to null: one device, not recorded.
  6 - the engine's own counters: `EngineStats.counters` (its /metrics before and after each setting: prompt and
      generation tokens, steps and tokens per step, preemptions, prefix-cache queries and hits, running, waiting
      and KV usage at the end). Migrating a version-5 file sets them to null: not read.
  7 - the steady window: a closed-loop setting's requests are those sent and ended between the warm-up's last
      end and the last send (`EngineStats.steady_s`, `edge_excluded`); before, the drain (fewer and fewer
      streams in flight) was counted as if at full concurrency. The counters are read at the window's edges and
      keep the time between readings (`EngineCounters.seconds`). A version-6 file keeps its readings, with
      these null: judged the old way.
  8 - prefill behind a cached prefix: `Point.cached_tokens` (a prefill point whose prompt began with that many
      tokens the engine had cached: seq_len tokens computed, TTFT timed). Migrating a version-7 file sets it
      to null: an uncached prefill.
  9 - the engine's start-up: `EngineInfo.startup` (process start to its first answer and to the first token of
      its first request, timed by `measure --endpoint --engine-pid`; or why not). Migrating a version-8 file
      sets it to null: not asked.

The id is the sha256 of the file's canonical JSON without `id`, verified against the content as stored (before
migration), so evidence keeps its identity when the model later gains fields.
"""

from __future__ import annotations

from measure.run.files import load_run, save_run
from measure.run.format import RUN_FILE, dump_run, migrate, parse_run, run_filename, run_json_schema
from measure.run.llm_facts import (
    MAX_DEVICES_PER_REPLICA,
    ONE_DEVICE,
    Count,
    EngineInfo,
    EngineStartup,
    LlmFacts,
    LlmGrid,
    MemoryFacts,
    ModelShape,
    ParamScalar,
    PhaseEnergy,
    ReplicaShape,
    SizeList,
)
from measure.run.models import (
    IdlePower,
    Quality,
    QualityProxy,
    QualityStatus,
    Run,
    Soak,
    SoakComparison,
    SoakWindow,
    SweepSpec,
)
from measure.run.points import (
    ClockSummary,
    Contention,
    DriftCheck,
    Energy,
    EnergyMethod,
    EngineCounters,
    EngineStats,
    LatencySummary,
    Paced,
    PacedBin,
    Point,
    PointKey,
    PointTelemetry,
    PowerStats,
    Stat,
)
from measure.run.types import (
    FUTURE_SLACK,
    MAX_BATCH_SIZE,
    MAX_ERRORS_KEPT,
    MAX_ITEMS_PER_S,
    MAX_LATENCY_MS,
    MAX_NAME_CHARS,
    MAX_POWER_W,
    MAX_RUN_FILE_BYTES,
    MAX_SEQ_LEN,
    METHODOLOGY_VERSION,
    MIN_LATENCY_MS,
    PHASES,
    PRECISIONS,
    RAW_LATENCY_CAP,
    SCHEMA_VERSION,
    WARMUP_LATENCY_CAP,
    BatchSize,
    CreatedAt,
    FileModel,
    ItemsPerS,
    LatencyMs,
    MaybeFloat,
    MaybeInt,
    MaybeStr,
    Methodology,
    NonNegFloat,
    Phase,
    PointSource,
    PointStatus,
    PosFloat,
    Precision,
    RunFileError,
    SeqLen,
    Stack,
    StoppingRule,
    Unavailable,
    WarmupPolicy,
    Watts,
    Workload,
    content_hash,
    unavailable,
)
from measure.run.versioned import VersionedFile, format_validation_error
from measure.run.writing import OutputPathError, atomic_write_text, check_output_dir, check_output_file

__all__ = [
    "FUTURE_SLACK",
    "MAX_BATCH_SIZE",
    "MAX_DEVICES_PER_REPLICA",
    "MAX_ERRORS_KEPT",
    "MAX_ITEMS_PER_S",
    "MAX_LATENCY_MS",
    "MAX_NAME_CHARS",
    "MAX_POWER_W",
    "MAX_RUN_FILE_BYTES",
    "MAX_SEQ_LEN",
    "METHODOLOGY_VERSION",
    "MIN_LATENCY_MS",
    "ONE_DEVICE",
    "PHASES",
    "PRECISIONS",
    "RAW_LATENCY_CAP",
    "RUN_FILE",
    "SCHEMA_VERSION",
    "WARMUP_LATENCY_CAP",
    "BatchSize",
    "ClockSummary",
    "Contention",
    "Count",
    "CreatedAt",
    "DriftCheck",
    "Energy",
    "EnergyMethod",
    "EngineCounters",
    "EngineInfo",
    "EngineStartup",
    "EngineStats",
    "FileModel",
    "IdlePower",
    "ItemsPerS",
    "LatencyMs",
    "LatencySummary",
    "LlmFacts",
    "LlmGrid",
    "MaybeFloat",
    "MaybeInt",
    "MaybeStr",
    "MemoryFacts",
    "Methodology",
    "ModelShape",
    "NonNegFloat",
    "OutputPathError",
    "Paced",
    "PacedBin",
    "ParamScalar",
    "Phase",
    "PhaseEnergy",
    "Point",
    "PointKey",
    "PointSource",
    "PointStatus",
    "PointTelemetry",
    "PosFloat",
    "PowerStats",
    "Precision",
    "Quality",
    "QualityProxy",
    "QualityStatus",
    "ReplicaShape",
    "Run",
    "RunFileError",
    "SeqLen",
    "SizeList",
    "Soak",
    "SoakComparison",
    "SoakWindow",
    "Stack",
    "Stat",
    "StoppingRule",
    "SweepSpec",
    "Unavailable",
    "VersionedFile",
    "WarmupPolicy",
    "Watts",
    "Workload",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "content_hash",
    "dump_run",
    "format_validation_error",
    "load_run",
    "migrate",
    "parse_run",
    "run_filename",
    "run_json_schema",
    "save_run",
    "unavailable",
]
