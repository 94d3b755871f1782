"""The run file contract: round trip, content id, atomic writes, migration and rejection of bad files."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from measure import run as run_mod
from measure.run import (
    Point,
    Run,
    RunFileError,
    atomic_write_text,
    content_hash,
    dump_run,
    load_run,
    migrate,
    parse_run,
    save_run,
)
from measure.run import files as run_files
from measure.run import format as run_format
from tests.conftest import make_run, ok_point, summary_of


def test_round_trip_preserves_every_field_and_verifies_the_id(tmp_path: Path, run: Run) -> None:
    path = save_run(run, tmp_path)
    loaded = load_run(path)
    assert loaded == run
    assert loaded.id == loaded.content_id()
    assert path.name.endswith(f"{run.short_id()}.json")


def test_content_id_changes_with_content_and_ignores_key_order(run: Run) -> None:
    other = make_run([ok_point("fp32", 1, mean_ms=2.5)])
    assert other.id != run.id
    data = json.loads(dump_run(run))
    reordered = json.dumps(dict(reversed(list(data.items()))))
    assert parse_run(reordered).id == run.id


def test_unavailable_values_round_trip_with_their_reason(tmp_path: Path, run: Run) -> None:
    loaded = load_run(save_run(run, tmp_path))
    assert loaded.stack.driver_version == run_mod.unavailable("CPU run: no GPU involved")


def _mutated(run: Run, edit) -> str:  # type: ignore[no-untyped-def]
    data = json.loads(dump_run(run))
    edit(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["points"][0]["latency_ms"].update(mean=-1.0),
            "latency_ms.mean: Input should be greater than or equal to",
        ),
        (
            lambda d: d["points"][0]["raw_latencies_ms"].__setitem__(0, -0.5),
            "raw_latencies_ms.0: Input should be greater than or equal to",
        ),
        (lambda d: d.pop("stack"), "stack"),
        (lambda d: d["points"][0].pop("status"), "status"),
        (lambda d: d.update(schema_version=99), "newer"),
        (lambda d: d.update(schema_version=0), "not a known"),
        (lambda d: d.update(schema_version="1"), "not an integer"),
        (lambda d: d["points"][0].update(status="oom", reason="x"), "must not carry measurements"),
        (lambda d: d["points"][1].update(status="unstable", reason=None), "needs a reason"),
        (lambda d: d["points"].append(d["points"][0]), "duplicate point"),
        (lambda d: d["points"][0].update(precision="fp64"), "precision"),
        (lambda d: d.update(surprise=1), "surprise"),
    ],
)
def test_invalid_runs_are_rejected_with_the_field_named(run: Run, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RunFileError, match=message):
        parse_run(_mutated(run, edit), verify_id=False)


def test_nan_and_infinity_are_rejected(run: Run) -> None:
    text = dump_run(run).replace('"mean_ci95_halfwidth": 0.01', '"mean_ci95_halfwidth": NaN', 1)
    with pytest.raises(RunFileError, match="NaN"):
        parse_run(text, verify_id=False)
    with pytest.raises(RunFileError, match="Infinity"):
        parse_run(text.replace("NaN", "Infinity"), verify_id=False)


def test_tampered_content_fails_the_id_check(run: Run) -> None:
    text = _mutated(run, lambda d: d["points"][0].update(throughput_items_per_s=1e9))
    with pytest.raises(RunFileError, match="content id mismatch"):
        parse_run(text)


def test_not_json_not_an_object_and_oversized_files_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(RunFileError, match="not valid JSON"):
        parse_run("{nope")
    with pytest.raises(RunFileError, match="JSON object"):
        parse_run("[1, 2]")
    monkeypatch.setattr(run_files, "RUN_FILE", dataclasses.replace(run_files.RUN_FILE, max_bytes=10))
    big = tmp_path / "big.json"
    big.write_text("{" + " " * 20 + "}")
    with pytest.raises(RunFileError, match="byte limit"):
        load_run(big)
    with pytest.raises(RunFileError, match="cannot read"):
        load_run(tmp_path / "missing.json")


def test_point_without_reason_for_non_ok_status_is_invalid() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        Point(precision="fp32", batch_size=1, status="unsupported")


def test_latency_percentiles_must_be_ordered() -> None:
    p = ok_point()
    assert p.latency_ms is not None
    with pytest.raises(ValueError, match="min <= median"):
        p.latency_ms.model_validate({**p.latency_ms.model_dump(), "p99": p.latency_ms.min / 2})


def test_migration_chain_runs_registered_steps(monkeypatch: pytest.MonkeyPatch, run: Run) -> None:
    old = json.loads(dump_run(run))
    old["schema_version"] = 0
    old["legacy"] = True
    old["id"] = content_hash({k: v for k, v in old.items() if k != "id"})  # as a v0 writer would have

    def v0_to_v1(d: dict) -> dict:  # type: ignore[type-arg]
        d = dict(d)
        d.pop("legacy")
        d["schema_version"] = 1
        return d

    monkeypatch.setitem(run_format._MIGRATIONS, 0, v0_to_v1)
    assert migrate(dict(old))["schema_version"] == run_mod.SCHEMA_VERSION
    migrated = parse_run(json.dumps(old))
    assert migrated.id == old["id"]  # identity is that of the stored file
    assert migrated.content_id() == run.id  # and the migrated content is exactly the current format


def test_the_id_is_of_the_stored_content_so_new_optional_fields_do_not_break_old_files(run: Run) -> None:
    data = json.loads(dump_run(run))
    assert parse_run(json.dumps(data)).id == data["id"]
    del data["points"][0]["flags"]  # an older writer that did not know the field
    data["id"] = content_hash({k: v for k, v in data.items() if k != "id"})
    assert parse_run(json.dumps(data)).id == data["id"]


def test_atomic_write_leaves_no_partial_file_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "out.json"
    target.write_text("previous")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new content")
    assert target.read_text() == "previous"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_write_replaces_content(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "sub" / "f.txt", "hello")
    assert target.read_text() == "hello"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_json_schema_validates_a_real_file_and_rejects_a_broken_one(run: Run) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = run_mod.run_json_schema()
    jsonschema.validate(json.loads(dump_run(run)), schema)
    broken = json.loads(dump_run(run))
    broken["points"][0]["batch_size"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["fp32", "bf16", "fp16", "int8"]),
            st.integers(min_value=1, max_value=4096),
            st.lists(st.floats(min_value=1e-3, max_value=1e5, allow_nan=False), min_size=2, max_size=50),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda t: (t[0], t[1]),
    )
)
def test_any_valid_run_round_trips_byte_for_byte(points: list[tuple[str, int, list[float]]]) -> None:
    pts = [
        Point(
            precision=prec,
            batch_size=b,
            status="ok",
            latency_ms=summary_of(xs),  # type: ignore[arg-type]
            throughput_items_per_s=b * 1000 / summary_of(xs).mean,
            raw_latencies_ms=xs,
        )
        for prec, b, xs in points
    ]
    run = make_run(pts)
    text = dump_run(run)
    again = parse_run(text)
    assert again == run and dump_run(again) == text


def test_a_version_1_file_migrates_with_telemetry_quality_and_soak_marked_not_measured() -> None:
    path = Path(__file__).resolve().parents[2] / "fixtures" / "run-v1-cnn.json"
    stored = json.loads(path.read_text())
    assert stored["schema_version"] == 1
    run = run_mod.load_run(path)
    assert run.id == stored["id"]  # the stored identity survives the migration
    assert run.schema_version == run_mod.SCHEMA_VERSION
    assert run.idle_power is None and run.quality is None and run.soak is None
    assert all(p.telemetry is None for p in run.points)
    assert run.methodology.energy_policy is None
