"""Recognising and converting the results other load generators write into engine benchmark evidence.

- `vllm bench serve --save-result` JSON (vllm/benchmarks/serve.py): `request_rate`, `burstiness`,
  `max_concurrency`, `completed`, `failed`, `duration`, `mean_/median_/pNN_{ttft,tpot,itl,e2el}_ms`; with
  `--save-detailed` also `input_lens`, `output_lens`, `ttfts` (s), `itls` (s per gap), `errors`. The file
  carries no version: the tool version is unknown.
- GuideLLM `benchmarks.json`, report `metadata.version` 2: `benchmarks[].config.strategy`,
  `benchmarks[].metrics.time_to_first_token_ms.successful.percentiles.p99`, ... and per-request
  `requests.successful[].info.timings`.
- AIPerf `profile_export_aiperf.json`, `schema_version` 1.x: `time_to_first_token.p99`,
  `inter_token_latency.avg`, `request_latency`, `input_config.phases`.

A file that is none of these, or a version these readers do not know, is refused with the reason: nothing is
guessed. Every value keeps the tool's field name beside it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from measure.run import ReplicaShape, format_validation_error
from measure.run.datafile import DataFileError, one_line, parse_json, read_regular_file
from planner.evidence.bench_formats import _aiperf, _guidellm, _records, _vllm, detect
from planner.evidence.engine_benchmark import (
    BENCHMARK_FILE,
    MAX_BENCHMARK_BYTES,
    MAX_LEVELS,
    MAX_REQUESTS_PER_FILE,
    BenchmarkFileError,
    EngineBenchmark,
    benchmark_filename,
    parse_benchmark,
    replica_shape,
    save_benchmark,
)


def convert(
    data: Any,
    raw: bytes,
    hardware: str | None,
    where: str,
    max_records: int = MAX_REQUESTS_PER_FILE,
    replica: ReplicaShape | None = None,
) -> EngineBenchmark:
    """An engine benchmark from a tool's parsed JSON (or an engine benchmark file as it is); bounded by what
    it would write (levels, records) before anything is converted. The replica is what the importer said, else
    what the hardware text says (`replica_shape`)."""
    if isinstance(data, dict) and data.get("kind") == "engine-benchmark":
        return parse_benchmark(data, where)
    tool = detect(data)
    if tool is None:
        raise BenchmarkFileError(
            f"{where}: not a result fleetwise can import (vllm bench serve --save-result JSON, GuideLLM "
            "benchmarks.json, AIPerf profile_export_aiperf.json, or a fleetwise engine benchmark)"
        )
    reader = {"vllm-bench-serve": _vllm, "guidellm": _guidellm, "aiperf": _aiperf}[tool]
    levels_n, records = _records(tool, data)
    if levels_n > MAX_LEVELS or records > max_records:
        raise BenchmarkFileError(
            f"{where}: {levels_n:,} levels and {records:,} per-request records; fleetwise imports at most "
            f"{MAX_LEVELS} levels and {max_records:,} records a file"
            + (" (split the file by level)" if max_records == MAX_REQUESTS_PER_FILE else UPLOAD_HINT)
        )
    try:
        shape = replica if replica is not None else replica_shape(hardware)
        version, fmt, model, engine, levels, notes = reader(data)
        b = EngineBenchmark(
            tool=tool,
            tool_version=version,
            tool_format=fmt,
            source_sha256=hashlib.sha256(raw).hexdigest(),
            model=model,
            engine=engine,
            hardware=(hardware or "").strip()[:500] or "unknown (not in the file; give --hardware)",
            replica=shape,
            imported_at=datetime.now(UTC),
            notes=notes,
            levels=levels,
        )
    except BenchmarkFileError as exc:
        raise BenchmarkFileError(f"{where}: {exc}") from None
    except ValidationError as exc:  # a value out of range: pydantic's fields, in one line
        raise BenchmarkFileError(
            f"{where}: {tool} result with a value out of range: {format_validation_error(exc)}"
        ) from None
    except (ValueError, OverflowError) as exc:
        raise BenchmarkFileError(
            f"{where}: {tool} result with a value out of range: {one_line(str(exc), 200)}"
        ) from None
    return b.with_id()


MAX_BENCHMARK_FILES = 256  # a sweep is a handful of files; a folder of thousands is a mistake, named


def benchmark_paths(paths: list[Path]) -> list[Path]:
    """The files named, a folder standing for every .json file directly in it (a sweep's output folder, or
    `fleetwise import --out`), sorted; bounded in count before any is read."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.glob("*.json") if not f.name.startswith("."))
            if not found:
                raise BenchmarkFileError(f"{p}: a folder with no .json benchmark file in it")
            out.extend(found[: MAX_BENCHMARK_FILES + 1])
        else:
            out.append(p)
        if len(out) > MAX_BENCHMARK_FILES:
            raise BenchmarkFileError(
                f"more than {MAX_BENCHMARK_FILES} benchmark files given: name the files of one sweep"
            )
    return out


def import_file(
    path: str | Path, hardware: str | None = None, replica: ReplicaShape | None = None
) -> EngineBenchmark:
    """Read (bounded, JSON only), recognise and convert a benchmark result file."""
    p = Path(path)
    try:
        raw = read_regular_file(p, MAX_BENCHMARK_BYTES, "benchmark file")
        data = parse_json(raw, str(p))
    except DataFileError as exc:
        raise BenchmarkFileError(str(exc)) from None
    return convert(data, raw, hardware, str(p), replica=replica)


UPLOAD_MAX_RECORDS = 20_000  # converted inside the app's server: about a second here, not ten
UPLOAD_HINT = (
    " in an upload (the app converts it while you wait); import a larger one with `fleetwise import`"
)


def accept_benchmark_upload(
    raw: bytes, folder: str | Path, hardware: str | None = None
) -> tuple[EngineBenchmark, Path, bool] | None:
    """An uploaded load generator result (or engine benchmark) converted and stored atomically: (benchmark,
    path, already there); None when the bytes are no such file (a run file, say), parsed once either way.
    An upload holds at most UPLOAD_MAX_RECORDS per-request records: the conversion runs in the server."""
    if len(raw) > MAX_BENCHMARK_BYTES:
        return None  # the run upload names the size limit (the same 64 MiB)
    try:
        data = parse_json(raw, "upload")
    except DataFileError:
        return None
    if detect(data) is None and not (isinstance(data, dict) and data.get("kind") == "engine-benchmark"):
        return None
    b = convert(data, raw, hardware, "upload", UPLOAD_MAX_RECORDS)
    path = Path(folder) / benchmark_filename(b)
    if path.exists():
        return b, path, True
    return b, save_benchmark(b, folder), False


def scan_benchmarks(folder: str | Path) -> tuple[list[tuple[Path, EngineBenchmark]], list[tuple[Path, str]]]:
    """The engine benchmarks in folder (newest import first) and the files that failed to load, with why."""
    found, broken = BENCHMARK_FILE.scan(folder)
    return sorted(found, key=lambda x: x[1].imported_at, reverse=True), broken
