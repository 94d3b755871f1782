"""Assumed profiles: what-if devices described by latency distributions and power, never evidence.

Schema history of the profile file: 1 - first version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from measure.run import (
    MAX_NAME_CHARS,
    MAX_SEQ_LEN,
    BatchSize,
    LatencyMs,
    SeqLen,
    Watts,
)
from measure.run.types import FileModel as _Model
from measure.run.versioned import VersionedFile
from planner.traffic.scenario import MAX_SCENARIO_BYTES, ScenarioError


class Deterministic(_Model):
    """Always `ms`."""

    dist: Literal["deterministic"]
    ms: LatencyMs


class Exponential(_Model):
    """Exponential with the given mean."""

    dist: Literal["exponential"]
    mean_ms: LatencyMs


class LogNormalLatency(_Model):
    """Lognormal with the given median and log-scale sigma."""

    dist: Literal["lognormal"]
    median_ms: LatencyMs
    sigma: float = Field(gt=0, le=3, description="log-scale spread; 3 already puts p99 at 1,000x the median")


class EmpiricalLatency(_Model):
    """Draws (with replacement) from the listed samples."""

    dist: Literal["empirical"]
    samples_ms: list[LatencyMs] = Field(min_length=1, max_length=100_000)


LatencyDist = Annotated[
    Deterministic | Exponential | LogNormalLatency | EmpiricalLatency, Field(discriminator="dist")
]


class ProfilePoint(_Model):
    """The latency distribution of one batch size (and sequence length, for token workloads)."""

    batch: BatchSize
    seq_len: SeqLen | None = None
    latency: LatencyDist


class ProfilePower(_Model):
    """Assumed power: idle, and busy by batch size (interpolated between the listed sizes)."""

    idle: Watts
    busy: dict[BatchSize, Watts] = Field(min_length=1, max_length=4096)


class AssumedProfile(_Model):
    """A what-if device described by assumed latency distributions; never evidence."""

    schema_version: Literal[1] = 1
    kind: Literal["assumed-profile"]
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    device: str = Field(min_length=1, max_length=MAX_NAME_CHARS, description="the key the price book uses")
    unit: str = Field(default="requests", min_length=1, max_length=64)
    units_per_item: float = Field(default=1.0, gt=0, le=MAX_SEQ_LEN)
    points: list[ProfilePoint] = Field(min_length=1, max_length=4096)
    power_w: ProfilePower | None = None
    notes: str = Field(default="", max_length=4000)

    @model_validator(mode="after")
    def _unique(self) -> AssumedProfile:
        keys = [(p.seq_len, p.batch) for p in self.points]
        if len(set(keys)) != len(keys):
            raise ValueError("two points share a batch size (and sequence length)")
        return self


PROFILE_FILE: VersionedFile[AssumedProfile] = VersionedFile(
    AssumedProfile,
    what="assumed profile",
    version=1,
    error=ScenarioError,
    max_bytes=MAX_SCENARIO_BYTES,
    filename=lambda p: f"{p.name}.yaml",
    pattern="*.yaml",
    yaml=True,
    version_required=False,
    kind="assumed-profile",
)


def load_profile(path: str | Path) -> AssumedProfile:
    """Read and validate an assumed-profile YAML file."""
    return PROFILE_FILE.read(path)


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema of the assumed-profile file."""
    return AssumedProfile.model_json_schema()


# ------------------------------------------------------------------------------------------------ model
