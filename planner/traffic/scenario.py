"""Traffic scenarios: arrival process, request sizes, SLOs, window, growth and seed (pydantic, YAML on disk).

Schema history (bump SCENARIO_SCHEMA_VERSION and migrate in `load_scenario` for every change):
  1 - first version.
  2 - generative (LLM) requests: `llm` (prompt and output token distributions, a token-length scale) and the
      SLO metrics ttft, tpot, itl and e2e. A version-1 file is read as version 2 without `llm`.
  3 - `llm.model`: the model the traffic is for (names and parameter count), so evidence of another model is
      left out. A version-2 file is read as version 3 without it (any model's evidence is taken, as before).
  4 - `llm.prefix`: a synthetic prefix structure (shared system prompts, multi-turn sessions whose next prompt
      extends the last one). A version-3 file is read as version 4 without it (no prefix structure).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, model_validator

from measure.run import MAX_NAME_CHARS, MAX_SEQ_LEN
from measure.run.types import FileModel as _Model
from measure.run.versioned import VersionedFile

SCENARIO_SCHEMA_VERSION: Final = 4
MAX_SCENARIO_BYTES = 1024 * 1024


class ScenarioError(ValueError):
    """A scenario (or profile) file that cannot be read or validated; the message names the fields."""


# Ranges in which a scenario is physical and its simulation bounded (what validates also simulates).
MAX_RATE_RPS: Final = 1e6
MIN_RATE_RPS: Final = 1e-6  # one request in 11 days; below it (or via growth) arrival times overflow
MIN_GROWTH: Final = 1e-3
MIN_CV, MAX_CV = 0.01, 50.0  # gamma shape 1/cv^2 stays within what numpy draws without under/overflow
MIN_SOJOURN_S, MAX_SOJOURN_S = 1e-3, 1e7
MAX_DURATION_S: Final = 366 * 86_400.0
MAX_GROWTH: Final = 1000.0
MAX_SIZE: Final = MAX_SEQ_LEN  # items per request and tokens per item
MAX_LIST: Final = 100_000
MAX_SLO_MS: Final = 3_600_000.0

Rate = Annotated[float, Field(ge=MIN_RATE_RPS, le=MAX_RATE_RPS)]
NonNegRate = Annotated[float, Field(ge=0, le=MAX_RATE_RPS)]
Cv = Annotated[float, Field(ge=MIN_CV, le=MAX_CV)]
Size = Annotated[int, Field(gt=0, le=MAX_SIZE)]


# ------------------------------------------------------------------------------------------------ arrivals


class Poisson(_Model):
    """Memoryless arrivals at a constant rate."""

    process: Literal["poisson"]
    rate_rps: Rate


class Gamma(_Model):
    """A renewal process with gamma inter-arrival times: cv > 1 is burstier than Poisson, cv < 1 smoother."""

    process: Literal["gamma"]
    rate_rps: Rate
    cv: Cv = Field(description="coefficient of variation of the inter-arrival time (1 = Poisson)")


class MmppState(_Model):
    """One state of a Markov-modulated Poisson process: its rate and mean sojourn time."""

    rate_rps: NonNegRate
    mean_duration_s: float = Field(ge=MIN_SOJOURN_S, le=MAX_SOJOURN_S)

    @model_validator(mode="after")
    def _zero_or_a_rate(self) -> MmppState:
        if 0 < self.rate_rps < MIN_RATE_RPS:
            raise ValueError(f"rate_rps {self.rate_rps:g} is below {MIN_RATE_RPS:g}: use 0 for an idle state")
        return self


class Mmpp(_Model):
    """Markov-modulated Poisson: the states are visited in a cycle, each for an exponential time.

    Two states with rates (high, 0) are an on/off burst source.
    """

    process: Literal["mmpp"]
    states: list[MmppState] = Field(min_length=2, max_length=64)

    @model_validator(mode="after")
    def _some_traffic(self) -> Mmpp:
        if all(s.rate_rps == 0 for s in self.states):
            raise ValueError("at least one MMPP state needs a positive rate")
        return self


class Diurnal(_Model):
    """A day of traffic: the peak rate times 24 hourly multipliers, with a within-hour process."""

    process: Literal["diurnal"]
    peak_rate_rps: Rate
    hourly_multipliers: list[Annotated[float, Field(ge=0, le=1)]] = Field(min_length=24, max_length=24)
    within_hour: Literal["poisson", "gamma"] = "poisson"
    cv: Cv = Field(default=1.0, description="inter-arrival cv within an hour (gamma only)")
    start_hour: int = Field(default=0, ge=0, le=23, description="hour of day at simulated time 0")

    @model_validator(mode="after")
    def _peak_is_one(self) -> Diurnal:
        if max(self.hourly_multipliers) <= 0:
            raise ValueError("hourly_multipliers are all zero: no traffic")
        for h, m in enumerate(self.hourly_multipliers):
            if 0 < m * self.peak_rate_rps < MIN_RATE_RPS:
                raise ValueError(
                    f"hour {h}: {m:g} x the peak is below {MIN_RATE_RPS:g} requests/s: use 0 for an idle hour"
                )
        return self


class Trace(_Model):
    """Replay of a request trace. CSV: Azure LLM inference format (TIMESTAMP, ContextTokens, GeneratedTokens) or a
    plain `timestamp_s` column. Mooncake JSON lines: `timestamp` (ms), `input_length`, `output_length` and the
    `hash_ids` of every prompt's blocks of `block_tokens` tokens (its prefix structure). `speedup` replays it k
    times faster (k x the rate) to model growth."""

    process: Literal["trace"]
    path: str = Field(
        min_length=1,
        max_length=4096,
        description="trace file; a relative path is relative to the scenario file",
    )
    format: Literal["csv", "mooncake"] = "csv"
    block_tokens: int = Field(
        default=512,
        ge=1,
        le=MAX_SIZE,
        description="mooncake: the tokens one hash id stands for (512 in its release)",
    )
    speedup: float = Field(default=1.0, ge=MIN_GROWTH, le=MAX_GROWTH)


Arrivals = Annotated[Poisson | Gamma | Mmpp | Diurnal | Trace, Field(discriminator="process")]


# ------------------------------------------------------------------------------------------------ sizes


class Fixed(_Model):
    """Always the same value."""

    dist: Literal["fixed"]
    value: Size


class Uniform(_Model):
    """Integers uniform on [low, high]."""

    dist: Literal["uniform"]
    low: Size
    high: Size

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"uniform high {self.high} < low {self.low}")
        return self


class LogNormal(_Model):
    """Rounded lognormal with a stated cap: values above the cap are clipped and the count is reported."""

    dist: Literal["lognormal"]
    median: float = Field(ge=1, le=MAX_SIZE)
    sigma: float = Field(gt=0, le=5)
    cap: Size


class Empirical(_Model):
    """Draws from the listed values (with optional weights)."""

    dist: Literal["empirical"]
    values: list[Size] = Field(min_length=1, max_length=MAX_LIST)
    weights: list[Annotated[float, Field(ge=0, le=1e12)]] | None = Field(default=None, max_length=MAX_LIST)

    @model_validator(mode="after")
    def _weights(self) -> Empirical:
        if self.weights is not None and (len(self.weights) != len(self.values) or sum(self.weights) <= 0):
            raise ValueError("weights must match values in length and have a positive sum")
        return self


class FromTrace(_Model):
    """Sequence lengths from the trace's ContextTokens column (trace arrivals only)."""

    dist: Literal["trace"]
    column: str = Field(default="ContextTokens", min_length=1, max_length=MAX_NAME_CHARS)


SizeDist = Annotated[Fixed | Uniform | LogNormal | Empirical, Field(discriminator="dist")]
SeqDist = Annotated[Fixed | Uniform | LogNormal | Empirical | FromTrace, Field(discriminator="dist")]


class RequestSize(_Model):
    """Items per request (the batch dimension) and, for token workloads, the sequence length."""

    items: SizeDist = Field(default_factory=lambda: Fixed(dist="fixed", value=1))
    seq_len: SeqDist | None = Field(default=None, description="token workloads: tokens per item")


class ModelSpec(_Model):
    """The model generative traffic is for: the names it goes by (a Hugging Face id, a served name, a preset)
    and its parameter count; evidence measured on another model is left out of sizing."""

    names: list[str] = Field(default_factory=list, max_length=16)
    parameters: int | None = Field(default=None, ge=1, le=10**13)

    @model_validator(mode="after")
    def _something(self) -> ModelSpec:
        if not self.names and self.parameters is None:
            raise ValueError("a model needs names or a parameter count")
        if any(not n.strip() or len(n) > MAX_NAME_CHARS for n in self.names):
            raise ValueError(f"model names must be 1..{MAX_NAME_CHARS} characters")
        return self

    def label(self) -> str:
        """e.g. 'Llama-3.1-8B (8.03e+09 parameters)'."""
        size = f"{self.parameters:.3g} parameters" if self.parameters is not None else ""
        name = " / ".join(self.names)
        return f"{name} ({size})" if name and size else name or size


class SystemPrompts(_Model):
    """Shared system prompts: every session starts with one of them, chosen uniformly."""

    prompts: int = Field(ge=1, le=100_000, description="distinct system prompts")
    tokens: int = Field(ge=1, le=MAX_SEQ_LEN, description="tokens of each")


class Sessions(_Model):
    """Multi-turn sessions: each turn's prompt is the last turn's prompt and answer followed by a new message."""

    turns: SizeDist = Field(description="turns per session")
    think_s: float = Field(
        gt=0,
        le=86_400,
        description="mean time (exponential) from a turn's arrival to when its next can arrive",
    )
    max_prompt_tokens: int = Field(
        default=MAX_SEQ_LEN,
        ge=1,
        le=MAX_SEQ_LEN,
        description="a session ends before a turn whose prompt would pass this (the next request opens another)",
    )


class PrefixModel(_Model):
    """A synthetic prefix structure: what the requests' prompts share, stated instead of read from a trace.
    `llm.prompt` then draws each turn's new message and `llm.output` its answer."""

    block_tokens: int = Field(default=16, ge=1, le=MAX_SEQ_LEN, description="tokens one prefix id stands for")
    system: SystemPrompts | None = None
    sessions: Sessions | None = None

    @model_validator(mode="after")
    def _something(self) -> PrefixModel:
        if self.system is None and self.sessions is None:
            raise ValueError("a prefix model needs system prompts, sessions or both")
        return self


class LlmTokens(_Model):
    """Token lengths of generative requests: the prompt (prefilled) and the output (decoded, token by token)."""

    prompt: SeqDist
    output: SeqDist
    prefix: PrefixModel | None = Field(
        default=None, description="synthetic shared prefixes (system prompts, sessions); null: none stated"
    )
    model: ModelSpec | None = Field(default=None, description="the model the traffic is for; null: any model")
    scale: float = Field(
        default=1.0,
        gt=0,
        le=1000,
        description="multiplies every prompt and output length (rounded, at least 1): e.g. a production trace "
        "replayed against a small model's context; stated in every result",
    )


LLM_METRICS: tuple[str, ...] = ("ttft", "tpot", "itl", "e2e")


class Slo(_Model):
    """A latency objective: the given percentile of the metric must not exceed the threshold.

    Batch serving: latency or queue. Generative requests: ttft (time to first token), tpot (time per output
    token after the first), itl (each gap between tokens) or e2e (arrival to last token)."""

    metric: Literal["latency", "queue", "ttft", "tpot", "itl", "e2e"] = "latency"
    percentile: float = Field(gt=0, lt=100)
    threshold_ms: float = Field(gt=0, le=MAX_SLO_MS)

    def label(self) -> str:
        """e.g. 'p99 latency <= 100 ms'."""
        return f"p{self.percentile:g} {self.metric} <= {self.threshold_ms:g} ms"


class Scenario(_Model):
    """A traffic scenario the simulator replays against a service model."""

    schema_version: Literal[4] = SCENARIO_SCHEMA_VERSION
    kind: Literal["scenario"] = "scenario"
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    description: str = Field(default="", max_length=4000)
    arrivals: Arrivals
    size: RequestSize = Field(default_factory=RequestSize)
    llm: LlmTokens | None = Field(default=None, description="generative requests: prompt and output tokens")
    slo: list[Slo] = Field(default_factory=list, max_length=16)
    requests: int | None = Field(default=None, gt=0, le=10_000_000, description="simulate this many arrivals")
    duration_s: float | None = Field(
        default=None, gt=0, le=MAX_DURATION_S, description="or simulate this long"
    )
    warmup_fraction: float = Field(
        default=0.1,
        ge=0,
        lt=0.9,
        description="first fraction of the window's arrivals excluded (empty start)",
    )
    growth: float = Field(
        default=1.0,
        ge=MIN_GROWTH,
        le=MAX_GROWTH,
        description="multiplies every arrival rate (trace: replays faster)",
    )
    seed: int = Field(default=0, ge=0, le=2**63 - 1)

    @model_validator(mode="after")
    def _window(self) -> Scenario:
        if (self.requests is None) == (self.duration_s is None):
            raise ValueError("give exactly one of requests or duration_s")
        if isinstance(self.size.seq_len, FromTrace) and not isinstance(self.arrivals, Trace):
            raise ValueError("size.seq_len dist 'trace' needs trace arrivals")
        if self.llm is not None:
            if any(isinstance(d, FromTrace) for d in (self.llm.prompt, self.llm.output)) and not isinstance(
                self.arrivals, Trace
            ):
                raise ValueError("llm token lengths from a trace need trace arrivals")
            if self.llm.prefix is not None and any(
                isinstance(d, FromTrace) for d in (self.llm.prompt, self.llm.output)
            ):
                raise ValueError("llm.prefix draws each turn's tokens: give prompt and output distributions")
            bad = [s.metric for s in self.slo if s.metric not in LLM_METRICS]
            if bad:
                raise ValueError(f"generative requests take SLOs on {', '.join(LLM_METRICS)}, not {bad[0]}")
        elif any(s.metric in LLM_METRICS for s in self.slo):
            raise ValueError("SLOs on ttft, tpot, itl or e2e need generative requests (an llm block)")
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


def scenario_path(sc: Scenario, folder: str | Path) -> Path:
    """Where save_scenario writes: `<name>.yaml`, the name made file-safe (and bounded by the name's length)."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", sc.name).strip("-") or "scenario"
    return Path(folder) / f"{safe}.yaml"


SCENARIO_FILE: VersionedFile[Scenario] = VersionedFile(
    Scenario,
    what="scenario",
    version=SCENARIO_SCHEMA_VERSION,
    error=ScenarioError,
    max_bytes=MAX_SCENARIO_BYTES,
    filename=lambda sc: scenario_path(sc, ".").name,
    pattern="*.yaml",
    # versions 2 and 3 only added fields that default to absent
    migrations={
        1: lambda d: {**d, "schema_version": 2},
        2: lambda d: {**d, "schema_version": 3},
        3: lambda d: {**d, "schema_version": 4},
    },
    yaml=True,
    version_required=False,  # written by hand: no schema_version means the current one
)


def _with_trace_from(sc: Scenario, base_dir: Path | None) -> Scenario:
    """A relative trace path resolved against the scenario's folder (links and loops are resolved when read)."""
    if isinstance(sc.arrivals, Trace) and base_dir is not None and not Path(sc.arrivals.path).is_absolute():
        resolved = (base_dir / sc.arrivals.path).absolute()
        sc = sc.model_copy(update={"arrivals": sc.arrivals.model_copy(update={"path": str(resolved)})})
    return sc


def parse_scenario(data: Any, where: str = "scenario", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario dict; a relative trace path is resolved against `base_dir`."""
    return _with_trace_from(SCENARIO_FILE.parse(data, where), base_dir)


def parse_scenario_text(text: str, where: str = "scenario", base_dir: Path | None = None) -> Scenario:
    """A scenario from YAML text typed or pasted by a user, parsed as strictly as a file."""
    return _with_trace_from(SCENARIO_FILE.parse_text(text, where), base_dir)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario YAML file."""
    p = Path(path)
    return _with_trace_from(SCENARIO_FILE.read(p), p.parent)


def dump_scenario(sc: Scenario) -> str:
    """YAML text of a scenario (defaults included, so the file says everything it means)."""
    return SCENARIO_FILE.dump(sc)


def save_scenario(sc: Scenario, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Write the scenario atomically into folder (read back first); an existing file of that name is replaced
    only on request."""
    target = scenario_path(sc, folder)
    if target.exists() and not overwrite:
        raise ScenarioError(f"{target.name} already exists: choose another name or ask to replace it")
    return SCENARIO_FILE.save(sc, folder)


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of the scenario file."""
    return Scenario.model_json_schema()
