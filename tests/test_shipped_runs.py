"""The shipped evidence in data/runs: real, valid, unchanged (ids verify) and as promised in the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from measure.run import load_run, migrate, run_json_schema
from tests.conftest import shipped_files

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "data" / "runs"


def test_every_shipped_run_loads_verifies_its_id_and_matches_the_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    files = shipped_files()
    assert files, "no shipped runs"
    schema = run_json_schema()
    for f in files:
        run = load_run(f)  # raises on a content-id mismatch
        # stored as measured (older schema versions keep their ids); the schema describes the current version
        jsonschema.validate(migrate(json.loads(f.read_text())), schema)
        assert run.sweep.complete, f"{f.name} is an interrupted run"


def test_shipped_cpu_evidence_covers_two_workloads_and_two_precisions() -> None:
    runs = [load_run(f) for f in shipped_files()]
    cpu = [r for r in runs if r.stack.device_kind == "cpu"]
    swept = [r for r in cpu if len({p.precision for p in r.points if p.status == "ok"}) >= 2]
    assert (
        len({r.workload.name for r in swept}) >= 2
    )  # single-precision runs (e.g. for validation) may be added
    for run in cpu:
        assert run.stack.device == "cpu" and run.stack.cpu_model == run.stack.device_name
        for p in run.points:
            if p.status in ("unsupported", "oom"):
                assert p.reason and p.latency_ms is None
