"""A run's format: content id, migrations from every earlier schema version, the strict parse and dump.

The id is the sha256 of the file's canonical JSON without `id`, verified against the content as stored (before
migration), so evidence keeps its identity when the model later gains fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from measure.run.models import Run
from measure.run.types import MAX_RUN_FILE_BYTES, SCHEMA_VERSION, RunFileError, content_hash
from measure.run.versioned import VersionedFile


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


def _v4_to_v5(data: dict[str, Any]) -> dict[str, Any]:
    # Version 4 recorded no replica shape: an LLM run's replica was one device, as measured or as it was served.
    llm = data.get("llm")
    return {**data, "schema_version": 5, "llm": {**llm, "replica": None} if isinstance(llm, dict) else llm}


def _v5_to_v6(data: dict[str, Any]) -> dict[str, Any]:
    # Version 5 read no engine counters: an engine point's counters are null, "not read".
    points = []
    for p in data.get("points", []):
        eng = p.get("engine") if isinstance(p, dict) else None
        points.append({**p, "engine": {**eng, "counters": None}} if isinstance(eng, dict) else p)
    return {**data, "schema_version": 6, "points": points}


# version -> function turning a dict of that version into a dict of the next version
def _v6_to_v7(data: dict[str, Any]) -> dict[str, Any]:
    # Version 6 judged a closed-loop setting from the warm-up to the end, drain included, and read the counters
    # before and after it: no steady window (null), counters with no time between readings (null)
    return {**data, "schema_version": 7}


def _v7_to_v8(data: dict[str, Any]) -> dict[str, Any]:
    # Version 7 measured no prefill behind a cached prefix: every point's cached_tokens is null
    return {**data, "schema_version": 8}


def _v8_to_v9(data: dict[str, Any]) -> dict[str, Any]:
    # Version 8 timed no engine start-up: llm.engine.startup is null (not asked)
    return {**data, "schema_version": 9}


_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
    6: _v6_to_v7,
    7: _v7_to_v8,
    8: _v8_to_v9,
}


def _stored_id_matches(run: Run, stored: dict[str, Any]) -> str | None:
    # The id covers the content as stored, before migration: a file keeps verifying after the model gains
    # fields, and a run copied between machines keeps its identity.
    expected = content_hash({k: v for k, v in stored.items() if k != "id"})
    found = stored.get("id")
    return (
        None
        if found == expected
        else f"content id mismatch: file says {found or '(empty)'}, content is {expected}"
    )


def run_filename(run: Run) -> str:
    """A readable, unique file name: workload, device kind, UTC date and the short content id."""
    stamp = run.created_at.strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "-" for c in run.workload.name)[:64]
    return f"{safe}-{run.stack.device_kind}-{stamp}-{run.short_id()}.json"


RUN_FILE: VersionedFile[Run] = VersionedFile(
    Run,
    what="run file",
    version=SCHEMA_VERSION,
    error=RunFileError,
    max_bytes=MAX_RUN_FILE_BYTES,
    filename=run_filename,
    pattern="*.json",
    migrations=_MIGRATIONS,
    check=_stored_id_matches,
    prepare=lambda run: run.with_id(),
)


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """Bring a run dict of any known older schema version to SCHEMA_VERSION."""
    return RUN_FILE.migrate(data)


def parse_run(text: str | bytes, *, verify_id: bool = True) -> Run:
    """Parse, migrate and validate run JSON strictly (measure.run.datafile); raise RunFileError naming the problem."""
    return (RUN_FILE if verify_id else replace(RUN_FILE, check=None)).parse_text(text, "run")


def dump_run(run: Run) -> str:
    """Pretty JSON for a run whose id is set from its content."""
    return RUN_FILE.dump(run if run.id == run.content_id() else run.with_id())


def run_json_schema() -> dict[str, Any]:
    """The JSON Schema of the run file."""
    return Run.model_json_schema()
