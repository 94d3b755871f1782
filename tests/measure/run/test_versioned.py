"""The one base of every versioned file: migrate, refuse, check, save read back, scan with reasons."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict

from measure.run import RUN_FILE, Run, VersionedFile
from planner.evidence.engine_benchmark import BENCHMARK_FILE, EngineBenchmark
from planner.evidence.llm_validation import LLM_VALIDATION_FILE, LlmValidation
from planner.evidence.validation import VALIDATION_FILE, Validation
from planner.fleet.prices import PRICE_BOOK_FILE, PriceBook
from planner.serving.profiles import PROFILE_FILE, AssumedProfile
from planner.traffic.scenario import SCENARIO_FILE, Scenario


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[3] = 3
    kind: Literal["note"] = "note"
    name: str
    words: int = 0


class NoteError(ValueError):
    pass


def _v1(d: dict[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in d.items() if k != "title"}
    return {**rest, "schema_version": 2, "name": d["title"]}


def _v2(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "schema_version": 3, "words": 0}


def _not_secret(n: Note, stored: dict[str, Any]) -> str | None:
    return "a secret note" if n.name == "secret" or stored.get("name") == "secret" else None


NOTES: VersionedFile[Note] = VersionedFile(
    Note,
    what="note file",
    version=3,
    error=NoteError,
    max_bytes=10_000,
    filename=lambda n: f"note-{n.name}.json",
    pattern="note-*.json",
    migrations={1: _v1, 2: _v2},
    check=_not_secret,
)


def test_older_versions_migrate_step_by_step_and_newer_or_unknown_ones_are_refused() -> None:
    assert NOTES.parse({"schema_version": 1, "title": "a"}, "x") == Note(name="a")
    with pytest.raises(
        NoteError,
        match=r"x: invalid note file: schema_version 4 is newer than this fleetwise understands \(3\)",
    ):
        NOTES.parse({"schema_version": 4, "name": "a"}, "x")
    with pytest.raises(NoteError, match="schema_version 0 is not a known note file version"):
        NOTES.parse({"schema_version": 0, "name": "a"}, "x")
    with pytest.raises(NoteError, match="schema_version is missing or not an integer"):
        NOTES.parse({"name": "a"}, "x")
    with pytest.raises(NoteError, match="malformed for its schema_version"):
        NOTES.parse({"schema_version": 1}, "x")  # no title for the migration to move
    with pytest.raises(NoteError, match="must hold a JSON object"):
        NOTES.parse([1], "x")


def test_the_check_sees_the_file_as_stored_and_a_refused_file_is_never_written(tmp_path: Path) -> None:
    with pytest.raises(NoteError, match="a secret note"):
        NOTES.parse({"schema_version": 3, "name": "secret"}, "x")
    with pytest.raises(NoteError, match="a secret note"):
        NOTES.save(Note(name="secret"), tmp_path)  # read back before the rename: refused, nothing kept
    assert list(tmp_path.iterdir()) == []
    path = NOTES.save(Note(name="ok", words=3), tmp_path)
    assert NOTES.read(path) == Note(name="ok", words=3) and path.name == "note-ok.json"


def test_a_scan_names_every_file_that_did_not_load(tmp_path: Path) -> None:
    NOTES.save(Note(name="a"), tmp_path)
    (tmp_path / "note-b.json").write_text('{"schema_version": 9, "name": "b"}')
    (tmp_path / "note-c.json").write_text("x" * 20_000)
    (tmp_path / "other.json").write_text("{}")  # not this format's file name: not read
    found, broken = NOTES.scan(tmp_path)
    assert [p.name for p, _ in found] == ["note-a.json"]
    assert {p.name: why for p, why in broken}.keys() == {"note-b.json", "note-c.json"}
    assert "newer" in dict((p.name, w) for p, w in broken)["note-b.json"]
    assert "byte limit" in dict((p.name, w) for p, w in broken)["note-c.json"]
    assert NOTES.scan(tmp_path / "missing") == ([], [])


def test_a_hand_written_format_may_leave_the_version_out_and_must_declare_its_kind() -> None:
    hand = VersionedFile(
        Note, what="note", version=3, error=NoteError, max_bytes=1000, filename=lambda n: "n.yaml",
        pattern="*.yaml", yaml=True, version_required=False, kind="note",
    )  # fmt: skip
    assert hand.parse_text("kind: note\nname: a\n", "n.yaml") == Note(name="a")
    with pytest.raises(NoteError, match=r"n.yaml: not a note \(needs kind: note\)"):
        hand.parse_text("name: a\n", "n.yaml")
    with pytest.raises(NoteError, match="must be a YAML mapping"):
        hand.parse_text("- a\n", "n.yaml")
    assert hand.parse_text(hand.dump(Note(name="b", words=2)), "n.yaml") == Note(name="b", words=2)


@pytest.mark.parametrize(
    ("fmt", "model"),
    [
        (RUN_FILE, Run),
        (VALIDATION_FILE, Validation),
        (LLM_VALIDATION_FILE, LlmValidation),
        (BENCHMARK_FILE, EngineBenchmark),
        (SCENARIO_FILE, Scenario),
        (PROFILE_FILE, AssumedProfile),
        (PRICE_BOOK_FILE, PriceBook),
    ],
)
def test_every_format_is_one_versioned_file_at_its_models_version(
    fmt: VersionedFile[Any], model: type
) -> None:
    assert isinstance(fmt, VersionedFile) and fmt.model is model
    assert model.model_fields["schema_version"].default == fmt.version
    assert all(v < fmt.version for v in fmt.migrations)
