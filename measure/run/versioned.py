"""One base for every versioned file fleetwise reads and writes: runs, validations, LLM validations, engine
benchmarks, scenarios.

A format is a pydantic model with a `schema_version`, a table of migrations (version -> function turning a
dict of that version into the next), a size bound, a file name and a glob for scanning a folder. Reading is
strict and bounded (`datafile`), older versions are migrated step by step, a newer one is refused with "upgrade",
an optional check (a content id, say) runs on the validated object, and saving is atomic with the file read
back by this same reader before the rename, so fleetwise never keeps a file it would refuse. A folder scan
returns what loaded and, for every file that did not, one line saying why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from measure.run.datafile import DataFileError, one_line, parse_json, parse_yaml, read_regular_file
from measure.run.writing import atomic_write_text

M = TypeVar("M", bound=BaseModel)
Migration = Callable[[dict[str, Any]], dict[str, Any]]


def format_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """Pydantic's field-level errors in one line: 'points.0.batch_size: Input should be greater than 0; ...'."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(one_line(f"{loc}: {err['msg']}", 200))
    more = f" (+{exc.error_count() - limit} more)" if exc.error_count() > limit else ""
    return "; ".join(parts) + more


def canonical_id(data: Mapping[str, Any], volatile: tuple[str, ...]) -> str:
    """sha256 of the canonical JSON of every field but the volatile ones (the id itself, when it was written):
    the same for an object as built and for the dict read back from its file."""
    kept = {k: v for k, v in data.items() if k not in volatile}
    canon = json.dumps(kept, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


@dataclass(frozen=True)
class VersionedFile(Generic[M]):
    """A file format: its model, version and migrations, bounds, name, and the error its readers raise."""

    model: type[M]
    what: str  # "validation file": names the format in every message
    version: int
    error: type[ValueError]
    max_bytes: int
    filename: Callable[[M], str]
    pattern: str  # the glob of this format's files in a folder
    migrations: Mapping[int, Migration] = field(default_factory=dict)
    # after validation, given the object and the dict as stored (before migration): why it is refused, or None
    check: Callable[[M, dict[str, Any]], str | None] | None = None
    prepare: Callable[[M], M] | None = None  # before saving (e.g. set the content id)
    yaml: bool = False  # a file people write by hand (YAML); evidence files are JSON
    version_required: bool = True  # hand-written files may leave schema_version out: the current version
    kind: str | None = None  # the `kind` a file of this format must declare (price-book, assumed-profile)

    def migrate(self, data: dict[str, Any]) -> dict[str, Any]:
        """A dict of any known earlier version brought to the current one, step by step."""
        version = data.get("schema_version", None if self.version_required else self.version)
        if not isinstance(version, int) or isinstance(version, bool):
            raise self.error("schema_version is missing or not an integer")
        if version > self.version:
            raise self.error(
                f"schema_version {version} is newer than this fleetwise understands ({self.version}); upgrade"
            )
        while version < self.version:
            step = self.migrations.get(version)
            if step is None:
                raise self.error(f"schema_version {version} is not a known {self.what} version")
            data = step(data)
            version = int(data["schema_version"])
        return {**data, "schema_version": version}

    def parse(self, data: object, where: str) -> M:
        """The object from parsed data: migrated, validated, checked; errors name `where`."""
        if not isinstance(data, dict):
            raise self.error(
                f"{where}: a {self.what} must " + ("be a YAML mapping" if self.yaml else "hold a JSON object")
            )
        if self.kind is not None and data.get("kind") != self.kind:
            article = "an" if self.what[:1] in "aeiou" else "a"
            raise self.error(f"{where}: not {article} {self.what} (needs kind: {self.kind})")
        stored = data
        try:
            obj = self.model.model_validate(self.migrate(data))
        except ValidationError as exc:
            raise self.error(f"{where}: invalid {self.what}: {format_validation_error(exc)}") from None
        except (TypeError, AttributeError, KeyError) as exc:  # a migration meeting a malformed older file
            raise self.error(
                f"{where}: invalid {self.what}: malformed for its schema_version ({type(exc).__name__})"
            ) from None
        except ValueError as exc:  # the format's own error from migrate
            raise self.error(f"{where}: invalid {self.what}: {exc}") from None
        why = self.check(obj, stored) if self.check is not None else None
        if why:
            raise self.error(f"{where}: {why}")
        return obj

    def parse_text(self, raw: bytes | str, where: str) -> M:
        """The object from a file's bytes or text (bounded, strict JSON or YAML)."""
        if len(raw) > self.max_bytes:
            raise self.error(f"{where}: {len(raw):,} bytes, over the {self.max_bytes:,} byte limit")
        try:
            data = parse_yaml(raw, where) if self.yaml else parse_json(raw, where)
        except DataFileError as exc:
            raise self.error(str(exc)) from None
        return self.parse(data, where)

    def read(self, path: str | Path) -> M:
        """Read and check one file (a regular file, at most max_bytes)."""
        p = Path(path)
        try:
            raw = read_regular_file(p, self.max_bytes, self.what)
        except DataFileError as exc:
            raise self.error(str(exc)) from None
        return self.parse_text(raw, str(p))

    def dump(self, obj: M) -> str:
        """The file's text: YAML with every default written out (a hand-written format), or indented JSON with
        NaN and infinity refused."""
        if self.yaml:
            return yaml.safe_dump(obj.model_dump(mode="json"), sort_keys=False)
        return json.dumps(obj.model_dump(mode="json"), indent=1, ensure_ascii=False, allow_nan=False) + "\n"

    def save(self, obj: M, folder: str | Path) -> Path:
        """Write atomically into folder, read back by `read` before the rename; returns the path."""
        if self.prepare is not None:
            obj = self.prepare(obj)
        return atomic_write_text(Path(folder) / self.filename(obj), self.dump(obj), check=self.read)

    def scan(
        self, folder: str | Path, pattern: str | None = None
    ) -> tuple[list[tuple[Path, M]], list[tuple[Path, str]]]:
        """Every file of this format in folder (sorted by name), and the ones that did not load, with why."""
        root = Path(folder)
        if not root.is_dir():
            return [], []
        found: list[tuple[Path, M]] = []
        broken: list[tuple[Path, str]] = []
        for p in sorted(root.glob(pattern or self.pattern)):
            try:
                found.append((p, self.read(p)))
            except self.error as exc:
                broken.append((p, str(exc)))
        return found, broken
