"""An LLM engine model checked against a live engine: predicted vs measured TTFT, TPOT and E2E per load level.

A file links to the LLM run whose step times fed the simulator, names the engine and its knobs, the token
lengths sent, the measured sustainable rate the loads are fractions of, and per level: both sides' p50/p99,
the error in percent ((predicted - measured) / measured), the load generator's lateness, failures and early
ends, and the reasons the records show when an error is large. Nothing here is tuned to the measurements.

Schema history: 1 - first version. 2 - per level, the engine's own counters over the level (its /metrics read
before and after) and the engine model's steps and mean batch over the same traffic; a version-1 file has
neither (null: not read); the canary readings taken before each level and after the last, and per level the
drift that kept it from being judged. 3 - the counters keep the seconds between their two readings (a version-2
file: null, not kept). 4 - prefix caching: per request the prefix block ids its prompt was built from (a trace
replay), per level the salt and block size that made their tokens and the share of prompt tokens found cached as
the engine counted it and as the engine model simulated it; the file says whether the model ran with the cache (a
version-3 file: no prefixes, no cache).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from measure.run import MAX_LATENCY_MS, MAX_SEQ_LEN, CreatedAt, EngineCounters, EngineInfo
from measure.run.types import FileModel as _Out
from measure.run.versioned import VersionedFile
from planner.evidence.drift import drift_flags as _drift
from planner.evidence.validation import MAX_VALIDATION_BYTES, ValidationFileError

P50_TARGET_PCT = 10.0
P99_TARGET_PCT = 15.0
TARGET_UP_TO_LOAD = 0.7
LATE_MS = 5.0  # a stream's send this late is generator lag, not engine latency
LATE_FRACTION = 0.01
METRICS = ("ttft", "tpot", "e2e")
# request records in one file: ~170 bytes each as written, so a file of this many stays far under the 16 MiB
# its loader reads (validate refuses to send more than this; a file with more is refused on load)
MAX_VALIDATION_REQUESTS = 60_000
MAX_PREFIX_IDS = 1_000_000  # prefix block ids kept in one file (~8 MB as written), under its 16 MiB


class Pcts(_Out):
    """p50 and p99 in ms."""

    p50_ms: float = Field(ge=0, le=1e10)
    p99_ms: float = Field(ge=0, le=1e10)


class LlmFigures(_Out):
    """TTFT, TPOT and E2E percentiles (ms, from the scheduled send time) and completed requests per second."""

    ttft: Pcts
    tpot: Pcts
    e2e: Pcts
    throughput_rps: float


class LiveRequest(_Out):
    """One request of a level as sent and measured (times in ms from the level's start / its schedule)."""

    send_ms: float = Field(ge=0, le=1e10)
    prompt_tokens: int = Field(ge=0, le=MAX_SEQ_LEN)
    output_tokens: int = Field(ge=0, le=MAX_SEQ_LEN)  # produced (the prediction replays these)
    ttft_ms: float | None = Field(ge=0, le=1e10)  # None: failed
    e2e_ms: float | None = Field(ge=0, le=1e10)
    late_ms: float = Field(ge=-1000, le=1e10)
    prefix_ids: list[int] | None = Field(
        default=None, max_length=100_000, description="the trace's block ids its prompt was built from"
    )

    @model_validator(mode="after")
    def _ordered(self) -> LiveRequest:
        if self.ttft_ms is not None and self.e2e_ms is not None and self.e2e_ms < self.ttft_ms:
            raise ValueError(f"e2e_ms {self.e2e_ms:g} before ttft_ms {self.ttft_ms:g}")
        return self


class LlmLevel(_Out):
    """One load level: both sides, the errors, the generator's lateness and why a large error happened."""

    load: float = Field(gt=0, le=100)
    rate_rps: float = Field(gt=0, le=1e6)
    requests: int = Field(ge=0, le=MAX_VALIDATION_REQUESTS)
    requests_measured: int = Field(ge=0, le=MAX_VALIDATION_REQUESTS)
    failed: int = Field(ge=0, le=MAX_VALIDATION_REQUESTS)
    failure_reasons: list[str]
    early_ends: int = Field(
        ge=0
    )  # streams that ended before max_tokens (the prediction used the tokens they produced)
    measured: LlmFigures | None  # None: no request of the level completed
    predicted: LlmFigures | None  # None: the simulator judged the level unstable
    error_pct: (
        dict[str, float] | None
    )  # "ttft_p50", "ttft_p99", ... : (predicted - measured) / measured x 100
    late_fraction: float  # share of requests sent more than LATE_MS after their schedule
    late_p99_ms: float
    generator_flag: bool
    in_flight_measured: float  # Little's law: completed rate x mean E2E
    in_flight_predicted: float | None
    steps_beyond_grid_share: float | None  # simulated steps timed at the measured grid's edge
    load_average: float | None
    within_target: bool | None  # None above TARGET_UP_TO_LOAD (reported, not judged)
    diagnosis: list[str]
    engine_counters: EngineCounters | None = Field(
        default=None, description="the engine's /metrics over the level (null: none, or not read)"
    )
    simulated_steps: int | None = None  # the engine model's steps over the same traffic
    simulated_mean_batch: float | None = None  # its generated tokens / steps
    drift: str | None = None  # the canary moved beyond its CI around this level: why it is not judged
    prefix_block_tokens: int | None = Field(
        default=None, ge=1, le=MAX_SEQ_LEN
    )  # tokens a prefix id stands for
    prefix_salt: int | None = (
        None  # what made this level's block tokens its own (no hit on an earlier level's)
    )
    prefix_hit_share_engine: float | None = Field(default=None, ge=0, le=1)  # its /metrics: hits / queries
    prefix_hit_share_simulated: float | None = Field(default=None, ge=0, le=1)
    requests_sent: list[LiveRequest] = Field(
        default_factory=list,
        max_length=MAX_VALIDATION_REQUESTS,
        description="every request: what a later model is re-checked on",
    )


class CanaryReading(_Out):
    """The canary setting measured before a level (`before_load`) or after the last (null)."""

    before_load: float | None = Field(default=None, gt=0, le=100)
    tpot_mean_ms: float | None = Field(default=None, ge=0, le=MAX_LATENCY_MS)
    tpot_ci_half_ms: float | None = Field(default=None, ge=0, le=MAX_LATENCY_MS)
    ttft_median_ms: float | None = Field(default=None, ge=0, le=MAX_LATENCY_MS)
    requests: int = Field(ge=0, le=10_000)
    failed: int = Field(ge=0, le=10_000)


def drift_flags(readings: list[CanaryReading]) -> list[str | None]:
    """For the level between readings i and i + 1: why it is not judged (the shared canary rule on TPOT)."""
    return _drift([(r.tpot_mean_ms, r.tpot_ci_half_ms) for r in readings], "TPOT")


class EngineKnobs(_Out):
    """The engine configuration both the live engine and the simulator ran with."""

    max_num_seqs: int = Field(gt=0, le=1_000_000)
    max_num_batched_tokens: int = Field(gt=0, le=10_000_000)
    chunked_prefill: bool
    block_size: int = Field(gt=0, le=65_536)
    kv_blocks: int = Field(gt=0, le=1_000_000_000)
    source: str = Field(
        max_length=1000, description="how each knob is known (server flags, defaults, the log)"
    )


class LlmValidation(_Out):
    """A live validation of an LLM run's engine model."""

    schema_version: Literal[4] = 4
    kind: Literal["llm-validation"] = "llm-validation"
    run_id: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    precision: str = Field(max_length=16)
    scenario: str = Field(max_length=2000)
    lengths: str = Field(max_length=2000, description="the prompt and output lengths sent, and their source")
    engine: EngineInfo
    knobs: EngineKnobs
    sustainable_rps: float = Field(gt=0)
    sustainable_method: str = Field(max_length=1000)
    seconds: float = Field(gt=0, le=86_400)
    warmup_fraction: float = Field(
        default=0.1, ge=0, lt=0.9, description="first share of each level's requests left out of the figures"
    )
    created_at: CreatedAt
    client: str = Field(max_length=500, description="the machine the load generator ran on")
    cpu_count: int
    notes: list[str]
    targets: str
    canary: str | None = Field(
        default=None, max_length=500, description="the canary setting, when one was run"
    )
    canaries: list[CanaryReading] = Field(default_factory=list, max_length=1000)
    levels: list[LlmLevel] = Field(min_length=1, max_length=64)
    verdict: str
    recheck_of: str | None = Field(
        default=None,
        max_length=300,
        description="re-predicted on the live traffic recorded in this earlier file (same measurements, later model)",
    )
    predicted_at: CreatedAt | None = Field(default=None, description="when the prediction was made, if later")
    prefix_caching: bool = Field(
        default=False, description="the engine model ran with automatic prefix caching (the engine had it on)"
    )

    @model_validator(mode="after")
    def _bounded(self) -> LlmValidation:
        n = sum(len(lv.requests_sent) for lv in self.levels)
        if n > MAX_VALIDATION_REQUESTS:
            raise ValueError(f"{n:,} request records, over {MAX_VALIDATION_REQUESTS:,} in one file")
        ids = sum(len(r.prefix_ids or ()) for lv in self.levels for r in lv.requests_sent)
        if ids > MAX_PREFIX_IDS:
            raise ValueError(f"{ids:,} prefix block ids, over {MAX_PREFIX_IDS:,} in one file")
        return self


def _pcts(x: np.ndarray) -> Pcts:
    return Pcts(p50_ms=float(np.percentile(x, 50) * 1000.0), p99_ms=float(np.percentile(x, 99) * 1000.0))


def figures(ttft_s: np.ndarray, e2e_s: np.ndarray, tokens: np.ndarray, throughput_rps: float) -> LlmFigures:
    """Percentiles over the requests given; TPOT over those with at least two tokens."""
    multi = tokens > 1
    tpot = (e2e_s[multi] - ttft_s[multi]) / (tokens[multi] - 1)
    return LlmFigures(
        ttft=_pcts(ttft_s),
        tpot=_pcts(tpot) if tpot.size else Pcts(p50_ms=0.0, p99_ms=0.0),
        e2e=_pcts(e2e_s),
        throughput_rps=throughput_rps,
    )


def errors(pred: LlmFigures, meas: LlmFigures) -> dict[str, float]:
    """(predicted - measured) / measured x 100 per metric and percentile."""
    out = {}
    for m in METRICS:
        for q in ("p50", "p99"):
            p, v = getattr(getattr(pred, m), f"{q}_ms"), getattr(getattr(meas, m), f"{q}_ms")
            out[f"{m}_{q}"] = (p - v) / v * 100.0 if v > 0 else float("nan")
    return {k: v for k, v in out.items() if np.isfinite(v)}


def _within(err: dict[str, float]) -> bool:
    return all(abs(v) <= (P50_TARGET_PCT if k.endswith("p50") else P99_TARGET_PCT) for k, v in err.items())


def llm_level(
    load: float,
    rate_rps: float,
    arrival_s: np.ndarray,
    live_first_s: np.ndarray,
    live_last_s: np.ndarray,
    live_tokens: np.ndarray,
    late_ms: np.ndarray,
    failures: list[str | None],
    early_ends: int,
    pred_first_s: np.ndarray,
    pred_finish_s: np.ndarray,
    pred_stable: bool,
    beyond_share: float | None,
    warmup_fraction: float,
    load_average: float | None,
    cpu_count: int,
    prompts: np.ndarray | None = None,
    prefix_ids: tuple[tuple[int, ...], ...] | None = None,
) -> LlmLevel:
    """Compare one level: live and simulated times (s from the start, NaN where a live request failed) of the
    same requests; the first `warmup_fraction` of requests (by send order) is excluded on both sides."""
    n = arrival_s.size
    keep = np.zeros(n, dtype=bool)
    keep[int(np.floor(warmup_fraction * n)) :] = True
    ok = keep & np.isfinite(live_first_s) & np.isfinite(live_last_s)
    measured = predicted = err = None
    in_flight_meas, in_flight_pred = 0.0, None
    if ok.any():
        span = float(np.nanmax(live_last_s) - arrival_s[0])
        tput = float(np.isfinite(live_last_s).sum() / span) if span > 0 else 0.0
        e2e = live_last_s[ok] - arrival_s[ok]
        measured = figures(live_first_s[ok] - arrival_s[ok], e2e, live_tokens[ok], tput)
        in_flight_meas = tput * float(e2e.mean())
        if pred_stable:
            pspan = float(np.nanmax(pred_finish_s) - arrival_s[0])
            pe2e = pred_finish_s[ok] - arrival_s[ok]
            ptput = float(n / pspan) if pspan > 0 else 0.0
            predicted = figures(pred_first_s[ok] - arrival_s[ok], pe2e, live_tokens[ok], ptput)
            err = errors(predicted, measured)
            in_flight_pred = ptput * float(pe2e.mean())
    late_frac = float(np.mean(late_ms > LATE_MS)) if late_ms.size else 0.0
    reasons = sorted({f for f in failures if f})
    level = LlmLevel(
        load=load,
        rate_rps=rate_rps,
        requests=n,
        requests_measured=int(ok.sum()),
        failed=sum(1 for f in failures if f),
        failure_reasons=reasons[:10],
        early_ends=early_ends,
        measured=measured,
        predicted=predicted,
        error_pct=err,
        late_fraction=late_frac,
        late_p99_ms=float(np.percentile(late_ms, 99)) if late_ms.size else 0.0,
        generator_flag=late_frac > LATE_FRACTION,
        in_flight_measured=in_flight_meas,
        in_flight_predicted=in_flight_pred,
        steps_beyond_grid_share=beyond_share,
        load_average=load_average,
        within_target=None,
        diagnosis=[],
        requests_sent=[]
        if prompts is None
        else [
            LiveRequest(
                send_ms=round(float(arrival_s[i]) * 1000.0, 3),
                prompt_tokens=int(prompts[i]),
                output_tokens=int(live_tokens[i]),
                ttft_ms=round(float(live_first_s[i] - arrival_s[i]) * 1000.0, 3)
                if np.isfinite(live_first_s[i])
                else None,
                e2e_ms=round(float(live_last_s[i] - arrival_s[i]) * 1000.0, 3)
                if np.isfinite(live_last_s[i])
                else None,
                late_ms=round(float(late_ms[i]), 3),
                prefix_ids=None if prefix_ids is None else list(prefix_ids[i]),
            )
            for i in range(n)
        ],
    )
    return judge(level, cpu_count)


def judge(level: LlmLevel, cpu_count: int) -> LlmLevel:
    """The level with its verdict and, where an error is large, the reasons visible in the records."""
    err = level.error_pct
    within = None
    if level.load <= TARGET_UP_TO_LOAD + 1e-9:
        within = err is not None and bool(err) and _within(err)
    diagnosis: list[str] = []
    if err is None or not _within(err):
        if level.measured is None:
            diagnosis.append("no request of this level completed")
        if level.predicted is None:
            diagnosis.append("the simulator judged this load unstable for the measured step times")
        if level.failed:
            diagnosis.append(f"{level.failed} requests failed ({'; '.join(level.failure_reasons[:3])})")
        if level.generator_flag:
            diagnosis.append(
                f"generator lag: {level.late_fraction:.1%} of requests left more than {LATE_MS:g} ms after their "
                f"schedule (p99 {level.late_p99_ms:.1f} ms); latency counts that lag, the prediction does not"
            )
        if level.load_average is not None and level.load_average > cpu_count:
            diagnosis.append(
                f"CPU contention: load average {level.load_average:.2f} on {cpu_count} CPUs (the engine and the "
                "load generator share them)"
            )
        if level.steps_beyond_grid_share:
            diagnosis.append(
                f"{level.steps_beyond_grid_share:.1%} of simulated steps ran beyond the measured grid and were "
                "timed at its edge (optimistic)"
            )
        if level.in_flight_predicted is not None and level.in_flight_measured > 0:
            ratio = level.in_flight_predicted / level.in_flight_measured
            if abs(ratio - 1) > 0.1:
                diagnosis.append(
                    f"requests in flight (Little's law): {level.in_flight_measured:.2f} live vs "
                    f"{level.in_flight_predicted:.2f} simulated: the engine's step times under this mix differ "
                    "from the measured curves' (closed-loop, fixed-length points)"
                )
        if not diagnosis:
            diagnosis.append("no cause visible in the records")
    return level.model_copy(update={"within_target": within, "diagnosis": diagnosis})


def verdict(levels: list[LlmLevel]) -> str:
    """One sentence: did the prediction hold where judged, and the errors above."""
    judged = [lv for lv in levels if lv.within_target is not None and lv.drift is None]
    ok = judged and all(lv.within_target for lv in judged)
    head = (
        f"prediction within |p50| <= {P50_TARGET_PCT:g}% and |p99| <= {P99_TARGET_PCT:g}% for TTFT, TPOT and E2E "
        f"at every load up to {TARGET_UP_TO_LOAD:g}"
        if ok
        else "prediction OFF TARGET at load "
        + ", ".join(f"{lv.load:g}" for lv in judged if not lv.within_target)
        if judged
        else "no level at or below the judged load"
    )
    drifted = [lv for lv in levels if lv.drift is not None]
    above = [lv for lv in levels if lv.within_target is None and lv.error_pct and lv.drift is None]
    tail = "; ".join(
        f"at {lv.load:g}: "
        + ", ".join(f"{k} {v:+.0f}%" for k, v in (lv.error_pct or {}).items() if k.endswith("p99"))
        for lv in above
    )
    moved = (
        f"; not judged (the canary moved): load {', '.join(f'{lv.load:g}' for lv in drifted)}"
        if drifted
        else ""
    )
    return head + (f"; reported above {TARGET_UP_TO_LOAD:g}: {tail}" if tail else "") + moved


def llm_validation_filename(v: LlmValidation) -> str:
    """llm-validation-<run short id>-<precision>-<UTC time>.json (batch validation scans never read it)."""
    short = v.run_id.removeprefix("sha256:")[:12]
    again = f"-recheck-{v.predicted_at:%Y%m%dT%H%M%SZ}" if v.predicted_at is not None else ""
    return f"llm-validation-{short}-{v.precision}-{v.created_at:%Y%m%dT%H%M%SZ}{again}.json"


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # Version 1 read no engine counters and kept no simulated step counts: null, "not read"
    return {**data, "schema_version": 2}


def _v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    # Version 2 kept no time between the counters' readings: null, "not kept"
    return {**data, "schema_version": 3}


def _v3_to_v4(data: dict[str, Any]) -> dict[str, Any]:
    # Version 3 sent no prefixes and ran the model without a prefix cache
    return {**data, "schema_version": 4}


LLM_VALIDATION_FILE: VersionedFile[LlmValidation] = VersionedFile(
    LlmValidation,
    what="LLM validation file",
    version=4,
    migrations={1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4},
    error=ValidationFileError,
    max_bytes=MAX_VALIDATION_BYTES,
    filename=llm_validation_filename,
    pattern="llm-validation-*.json",
)


def save_llm_validation(v: LlmValidation, folder: str | Path) -> Path:
    """Write the file atomically into folder (read back first)."""
    return LLM_VALIDATION_FILE.save(v, folder)


def load_llm_validation(path: str | Path) -> LlmValidation:
    """Read and validate an LLM validation file (bounded, JSON only)."""
    return LLM_VALIDATION_FILE.read(path)


def scan_llm_validations(
    run_id: str, folder: str | Path
) -> tuple[list[LlmValidation], list[tuple[Path, str]]]:
    """A run's LLM validations in folder, newest first, and its files that failed to load (with why)."""
    short = run_id.removeprefix("sha256:")[:12]
    found, broken = LLM_VALIDATION_FILE.scan(folder, f"llm-validation-{short}-*.json")
    mine = [v for _, v in found if v.run_id == run_id]
    return sorted(mine, key=lambda v: (v.created_at, v.predicted_at or v.created_at), reverse=True), broken
