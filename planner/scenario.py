"""Traffic scenarios: arrival process, request sizes, SLOs, window, growth and seed (pydantic, YAML on disk).

Schema history (bump SCENARIO_SCHEMA_VERSION and migrate in `load_scenario` for every change):
  1 - first version.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from measure.run import atomic_write_text, format_validation_error

SCENARIO_SCHEMA_VERSION: Final = 1
MAX_SCENARIO_BYTES = 1024 * 1024


class ScenarioError(ValueError):
    """A scenario (or profile) file that cannot be read or validated; the message names the fields."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


# ------------------------------------------------------------------------------------------------ arrivals


class Poisson(_Model):
    """Memoryless arrivals at a constant rate."""

    process: Literal["poisson"]
    rate_rps: PosFloat


class Gamma(_Model):
    """A renewal process with gamma inter-arrival times: cv > 1 is burstier than Poisson, cv < 1 smoother."""

    process: Literal["gamma"]
    rate_rps: PosFloat
    cv: PosFloat = Field(description="coefficient of variation of the inter-arrival time (1 = Poisson)")


class MmppState(_Model):
    """One state of a Markov-modulated Poisson process: its rate and mean sojourn time."""

    rate_rps: NonNegFloat
    mean_duration_s: PosFloat


class Mmpp(_Model):
    """Markov-modulated Poisson: the states are visited in a cycle, each for an exponential time.

    Two states with rates (high, 0) are an on/off burst source.
    """

    process: Literal["mmpp"]
    states: list[MmppState] = Field(min_length=2)

    @model_validator(mode="after")
    def _some_traffic(self) -> Mmpp:
        if all(s.rate_rps == 0 for s in self.states):
            raise ValueError("at least one MMPP state needs a positive rate")
        return self


class Diurnal(_Model):
    """A day of traffic: the peak rate times 24 hourly multipliers, with a within-hour process."""

    process: Literal["diurnal"]
    peak_rate_rps: PosFloat
    hourly_multipliers: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=24, max_length=24)
    within_hour: Literal["poisson", "gamma"] = "poisson"
    cv: PosFloat = Field(default=1.0, description="inter-arrival cv within an hour (gamma only)")
    start_hour: int = Field(default=0, ge=0, le=23, description="hour of day at simulated time 0")

    @model_validator(mode="after")
    def _peak_is_one(self) -> Diurnal:
        if max(self.hourly_multipliers) <= 0:
            raise ValueError("hourly_multipliers are all zero: no traffic")
        return self


class Trace(_Model):
    """Replay of a request trace (CSV). Azure LLM inference format: TIMESTAMP, ContextTokens, GeneratedTokens;
    or a plain `timestamp_s` column. `speedup` replays it k times faster (k x the rate) to model growth."""

    process: Literal["trace"]
    path: str = Field(description="CSV file; a relative path is relative to the scenario file")
    speedup: PosFloat = 1.0


Arrivals = Annotated[Poisson | Gamma | Mmpp | Diurnal | Trace, Field(discriminator="process")]


# ------------------------------------------------------------------------------------------------ sizes


class Fixed(_Model):
    """Always the same value."""

    dist: Literal["fixed"]
    value: int = Field(gt=0)


class Uniform(_Model):
    """Integers uniform on [low, high]."""

    dist: Literal["uniform"]
    low: int = Field(gt=0)
    high: int = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"uniform high {self.high} < low {self.low}")
        return self


class LogNormal(_Model):
    """Rounded lognormal with a stated cap: values above the cap are clipped and the count is reported."""

    dist: Literal["lognormal"]
    median: PosFloat
    sigma: PosFloat
    cap: int = Field(gt=0)


class Empirical(_Model):
    """Draws from the listed values (with optional weights)."""

    dist: Literal["empirical"]
    values: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)
    weights: list[NonNegFloat] | None = None

    @model_validator(mode="after")
    def _weights(self) -> Empirical:
        if self.weights is not None and (len(self.weights) != len(self.values) or sum(self.weights) <= 0):
            raise ValueError("weights must match values in length and have a positive sum")
        return self


class FromTrace(_Model):
    """Sequence lengths from the trace's ContextTokens column (trace arrivals only)."""

    dist: Literal["trace"]
    column: str = "ContextTokens"


SizeDist = Annotated[Fixed | Uniform | LogNormal | Empirical, Field(discriminator="dist")]
SeqDist = Annotated[Fixed | Uniform | LogNormal | Empirical | FromTrace, Field(discriminator="dist")]


class RequestSize(_Model):
    """Items per request (the batch dimension) and, for token workloads, the sequence length."""

    items: SizeDist = Field(default_factory=lambda: Fixed(dist="fixed", value=1))
    seq_len: SeqDist | None = Field(default=None, description="token workloads: tokens per item")


class Slo(_Model):
    """A latency objective: the given percentile of the metric must not exceed the threshold."""

    metric: Literal["latency", "queue"] = "latency"
    percentile: float = Field(gt=0, lt=100)
    threshold_ms: PosFloat

    def label(self) -> str:
        """e.g. 'p99 latency <= 100 ms'."""
        return f"p{self.percentile:g} {self.metric} <= {self.threshold_ms:g} ms"


class Scenario(_Model):
    """A traffic scenario the simulator replays against a service model."""

    schema_version: Literal[1] = SCENARIO_SCHEMA_VERSION
    kind: Literal["scenario"] = "scenario"
    name: str = Field(min_length=1)
    description: str = ""
    arrivals: Arrivals
    size: RequestSize = Field(default_factory=RequestSize)
    slo: list[Slo] = Field(default_factory=list)
    requests: int | None = Field(default=None, gt=0, le=10_000_000, description="simulate this many arrivals")
    duration_s: PosFloat | None = Field(default=None, description="or simulate this long")
    warmup_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=0.9,
        description="first fraction of the window's arrivals excluded (empty start)",
    )
    growth: PosFloat = Field(default=1.0, description="multiplies every arrival rate (trace: replays faster)")
    seed: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _window(self) -> Scenario:
        if (self.requests is None) == (self.duration_s is None):
            raise ValueError("give exactly one of requests or duration_s")
        if isinstance(self.size.seq_len, FromTrace) and not isinstance(self.arrivals, Trace):
            raise ValueError("size.seq_len dist 'trace' needs trace arrivals")
        return self

    def mean_rate_rps(self) -> float | None:
        """Long-run mean arrival rate with growth applied (None for traces: read from the file)."""
        a = self.arrivals
        if isinstance(a, Poisson | Gamma):
            return a.rate_rps * self.growth
        if isinstance(a, Mmpp):
            total = sum(s.mean_duration_s for s in a.states)
            return sum(s.rate_rps * s.mean_duration_s for s in a.states) / total * self.growth
        if isinstance(a, Diurnal):
            return a.peak_rate_rps * sum(a.hourly_multipliers) / 24 * self.growth
        return None

    def peak_rate_rps(self) -> float | None:
        """Highest sustained arrival rate the process defines (per state or per hour), growth applied."""
        a = self.arrivals
        if isinstance(a, Mmpp):
            return max(s.rate_rps for s in a.states) * self.growth
        if isinstance(a, Diurnal):
            return a.peak_rate_rps * max(a.hourly_multipliers) * self.growth
        return self.mean_rate_rps()


def read_yaml(path: str | Path) -> Any:
    """YAML from a file, size-checked, with one-line errors."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError(f"{p}: larger than {MAX_SCENARIO_BYTES} bytes")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{p}: not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{p}: not valid YAML: {str(exc).splitlines()[0]}") from None


def parse_scenario(data: Any, where: str = "scenario", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario dict; a relative trace path is resolved against `base_dir`."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{where}: a scenario must be a YAML mapping")
    version = data.get("schema_version", SCENARIO_SCHEMA_VERSION)
    if version != SCENARIO_SCHEMA_VERSION:
        raise ScenarioError(
            f"{where}: schema_version {version!r} is not supported ({SCENARIO_SCHEMA_VERSION})"
        )
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(f"{where}: invalid scenario: {format_validation_error(exc)}") from None
    if isinstance(sc.arrivals, Trace) and base_dir is not None and not Path(sc.arrivals.path).is_absolute():
        resolved = (base_dir / sc.arrivals.path).resolve()
        sc = sc.model_copy(update={"arrivals": sc.arrivals.model_copy(update={"path": str(resolved)})})
    return sc


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    p = Path(path)
    return parse_scenario(read_yaml(p), str(p), p.parent)


def dump_scenario(sc: Scenario) -> str:
    """YAML text of a scenario (defaults included, so the file says everything it means)."""
    return yaml.safe_dump(sc.model_dump(mode="json"), sort_keys=False)


def save_scenario(sc: Scenario, folder: str | Path) -> Path:
    """Write the scenario as `<name>.yaml` (name made file-safe) into folder, atomically."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", sc.name).strip("-") or "scenario"
    return atomic_write_text(Path(folder) / f"{safe}.yaml", dump_scenario(sc))


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of the scenario file."""
    return Scenario.model_json_schema()
