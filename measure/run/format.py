"""A run's format: content id, migrations from every earlier schema version, the strict parse and dump.

The id is the sha256 of the file's canonical JSON without `id`, verified against the content as stored (before
migration), so evidence keeps its identity when the model later gains fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from pydantic import (
    ValidationError,
)

from measure.run.datafile import DataFileError, one_line, parse_json
from measure.run.models import Run
from measure.run.types import MAX_RUN_FILE_BYTES, SCHEMA_VERSION, RunFileError, content_hash


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


def dump_run(run: Run) -> str:
    """Pretty JSON for a run whose id is set from its content."""
    if run.id != run.content_id():
        run = run.with_id()
    return json.dumps(run.model_dump(mode="json"), indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def run_json_schema() -> dict[str, Any]:
    """The JSON Schema of the run file."""
    return Run.model_json_schema()
