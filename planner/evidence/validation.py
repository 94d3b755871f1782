"""Prediction checked against reality: simulated vs live-measured latency per load level, and the file format.

A validation file is linked to a run id and says, per load level, what the simulator predicted and what a
live replay on the device measured for the same arrivals and batching config, the error in percent, how
late the load generator was, and, when the error is large, the likely reasons visible in the records.

Schema history of the validation file: 1 - first version. 2 - a paced run's levels also carry the prediction
from its back-to-back samples alone (`predicted_back_to_back`, `error_back_to_back_pct`): what pacing changed.
Migrating a version-1 file sets them to null. 3 - drift control and curves measured in the validation's own
session: the canary readings (batch 1 back to back, before every level and after the last), the canary's time
over the run's own batch-1 mean, per level the drift that kept it from being judged, and `judged_from`: "run"
(the run's curves predict every level, as in versions 1 and 2) or "session curves" (each level is predicted from
every batch size's service time measured around it (half before, half after) in the same process, idle gaps as at that level's rate;
the run's own prediction is kept beside it as `predicted_from_run`). Migrating sets `judged_from` to "run".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
from pydantic import Field

from measure.run import (
    MAX_BATCH_SIZE,
    MAX_NAME_CHARS,
    CreatedAt,
)
from measure.run.quantiles import quantile_ci
from measure.run.types import FileModel as _Out
from measure.run.versioned import VersionedFile
from planner.serving.service import BatchLatency, LatencyTable, ServiceModel, samples_latency
from planner.serving.simulation import SimResult

P50_TARGET_PCT = 5.0
P99_TARGET_PCT = 10.0
TARGET_UP_TO_LOAD = 0.7
LATE_MS = 1.0
LATE_FRACTION = 0.01
SERVICE_DRIFT = 0.05
T = TypeVar("T")


MAX_VALIDATION_BYTES = 16 * 1024 * 1024


class ValidationFileError(ValueError):
    """A validation file that cannot be read or validated."""


class Figures(_Out):
    """Latency percentiles (ms) from the scheduled arrival, and completed requests per second."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_rps: float


class LevelResult(_Out):
    """One load level: predicted vs measured, errors, generator lag and the reasons for a large error."""

    load: float
    rate_rps: float
    requests: int
    requests_measured: int
    predicted: Figures | None  # None: the simulator judged the level unstable
    measured: Figures
    error_pct: dict[str, float] | None  # (predicted - measured) / measured x 100
    late_fraction_over_1ms: float
    late_p99_ms: float
    late_max_ms: float
    generator_flag: bool
    mean_batch_live: float
    mean_batch_predicted: float | None
    service_ratio: float | None  # live median batch time / isolated median, at the most common batch size
    service_batch: int | None
    within_target: bool | None  # None above TARGET_UP_TO_LOAD (reported, not judged)
    # the simulator fed the batch service times observed live instead of the isolated ones: separates the
    # queueing model's error from the service-time input's error
    predicted_live_service: Figures | None = None
    error_live_service_pct: dict[str, float] | None = None
    # a paced run only: the prediction from its back-to-back samples, idle gaps ignored (what pacing changed)
    predicted_back_to_back: Figures | None = None
    error_back_to_back_pct: dict[str, float] | None = None
    diagnosis: list[str]
    drift: str | None = None  # the canary moved beyond its CI around this level: why it is not judged
    # judged from session curves: the prediction from the run's own curves, and its error
    predicted_from_run: Figures | None = None
    error_from_run_pct: dict[str, float] | None = None
    curve_median_ms: dict[int, float] | None = None  # the session curve's median per batch size
    # distribution-free 95% CIs of the measured p50 and p99 ([low, high], null where the data cannot bound it)
    measured_ci_ms: dict[str, tuple[float | None, float | None]] | None = None


class BatchCanary(_Out):
    """The canary (batch 1 back to back on the session's model) read before a level (`before_load`) or after
    the last (null)."""

    before_load: float | None = Field(default=None, gt=0, lt=1)
    mean_ms: float = Field(ge=0, le=3_600_000)
    ci_half_ms: float = Field(ge=0, le=3_600_000)
    median_ms: float = Field(ge=0, le=3_600_000)
    calls: int = Field(ge=2, le=100_000)


class Validation(_Out):
    """A live validation of one run's config against the simulator."""

    schema_version: Literal[3] = 3
    kind: Literal["validation"] = "validation"
    run_id: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    precision: str = Field(max_length=16)
    scenario: str = Field(max_length=4 * MAX_NAME_CHARS)
    arrivals: str
    max_batch: int = Field(gt=0, le=MAX_BATCH_SIZE)
    max_delay_ms: float = Field(ge=0, le=3_600_000)
    seconds: float = Field(gt=0, le=86_400)
    seq_len: int | None = Field(gt=0, le=1_048_576)
    created_at: CreatedAt
    device: str
    threads: int
    cpu_count: int
    notes: list[str]
    targets: str
    levels: list[LevelResult]
    verdict: str
    judged_from: Literal["run", "session curves"] = "run"
    canaries: list[BatchCanary] = Field(default_factory=list, max_length=1000)
    canary_vs_run: float | None = Field(
        default=None, gt=0, le=1000, description="the first canary's mean over the run's own batch-1 mean"
    )
    curve_calls_per_size: int | None = Field(default=None, ge=1, le=10_000)


def _ms_ci(lat_s: np.ndarray, q: float) -> tuple[float | None, float | None]:
    lo, hi = quantile_ci(lat_s, q)
    return (None if lo is None else lo * 1000.0, None if hi is None else hi * 1000.0)


def _pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q, method="linear") * 1000.0)


def compare_level(
    load: float,
    rate_rps: float,
    predicted: SimResult,
    scheduled_s: np.ndarray,
    enqueue_s: np.ndarray,
    done_s: np.ndarray,
    batch_sizes: list[int],
    batch_service_s: list[float],
    warmup_fraction: float,
    isolated_median_ms: Callable[[int], float],
    load_average: float | None,
    cpu_count: int,
    reference: str = "the run's",
) -> LevelResult:
    """Predicted vs measured for one level, with the same warm-up rule as the simulator. `isolated_median_ms`
    is the median batch time the prediction drew from (`reference` names it: the run's, a session curve's)."""
    n = scheduled_s.size
    warm = int(np.floor(warmup_fraction * n))
    lat = (done_s - scheduled_s)[warm:]
    late_ms = (enqueue_s - scheduled_s) * 1000.0
    span = float(np.nanmax(done_s) - scheduled_s[0])
    measured = Figures(
        p50_ms=_pct(lat, 50),
        p90_ms=_pct(lat, 90),
        p99_ms=_pct(lat, 99),
        throughput_rps=n / span if span > 0 else 0.0,
    )
    pred = None
    errors = None
    if predicted.stable and predicted.latency_ms is not None:
        pl = predicted.latency_ms
        pred = Figures(
            p50_ms=pl.p50, p90_ms=pl.p90, p99_ms=pl.p99, throughput_rps=predicted.throughput_rps or 0.0
        )
        errors = {
            k: (getattr(pred, k) - getattr(measured, k)) / getattr(measured, k) * 100.0
            for k in ("p50_ms", "p90_ms", "p99_ms", "throughput_rps")
        }
    sizes = np.asarray(batch_sizes)
    services = np.asarray(batch_service_s) * 1000.0
    common = int(np.bincount(sizes).argmax()) if sizes.size else None
    ratio = live_ms = iso_ms = None
    if common is not None:
        live_ms, iso_ms = float(np.median(services[sizes == common])), isolated_median_ms(common)
        ratio = live_ms / iso_ms
    late_frac = float(np.mean(late_ms > LATE_MS))
    flag = late_frac > LATE_FRACTION
    within = None
    if load <= TARGET_UP_TO_LOAD + 1e-9:
        within = (
            errors is not None
            and abs(errors["p50_ms"]) <= P50_TARGET_PCT
            and abs(errors["p99_ms"]) <= P99_TARGET_PCT
        )
    ci = {k: _ms_ci(lat, q) for k, q in (("p50_ms", 0.5), ("p99_ms", 0.99))}
    large = errors is None or abs(errors["p50_ms"]) > P50_TARGET_PCT or abs(errors["p99_ms"]) > P99_TARGET_PCT
    diagnosis: list[str] = []
    if large:
        if errors is None:
            diagnosis.append(
                f"the simulator judged this load unstable for {reference} service times (the offered rate is "
                "above what they sustain)"
            )
        if flag:
            diagnosis.append(
                f"generator lag: {late_frac:.1%} of requests were enqueued more than {LATE_MS:g} ms after their "
                f"schedule (max {np.max(late_ms):.2f} ms); latency counts that lag, the prediction does not"
            )
        if ratio is not None and abs(ratio - 1) > SERVICE_DRIFT:
            diagnosis.append(
                f"service time under load differs from the isolated measurement: at batch {common} the median "
                f"batch took {ratio:.2f}x {reference} median ({live_ms:.3g} ms live vs {iso_ms:.3g} ms measured)"
            )
        if load_average is not None and load_average > cpu_count:
            diagnosis.append(
                f"CPU contention: the load average was {load_average:.2f} on {cpu_count} CPUs during the level"
            )
        inside = [
            f"{k.removesuffix('_ms')} ({getattr(pred, k):.3g} ms predicted, measured CI "
            f"[{ci[k][0]:.3g}, {ci[k][1]:.3g}] ms)"
            for k, target in (("p50_ms", P50_TARGET_PCT), ("p99_ms", P99_TARGET_PCT))
            if errors is not None and pred is not None and abs(errors[k]) > target
            and ci[k][0] is not None and ci[k][1] is not None and ci[k][0] <= getattr(pred, k) <= ci[k][1]
        ]  # fmt: skip
        if inside:
            diagnosis.append(
                f"within the measurement's own uncertainty: the prediction lies inside the 95% CI of the measured "
                f"{' and '.join(inside)} from {lat.size} requests; more live seconds would judge it"
            )
        if not diagnosis:
            diagnosis.append(
                "no cause visible in the records: the simulator's assumption (batch service times drawn "
                "independently from the isolated measurement) may not hold for this workload under load"
            )
    return LevelResult(
        load=load,
        rate_rps=rate_rps,
        requests=n,
        requests_measured=int(lat.size),
        predicted=pred,
        measured=measured,
        error_pct=errors,
        late_fraction_over_1ms=late_frac,
        late_p99_ms=float(np.percentile(late_ms, 99)),
        late_max_ms=float(np.max(late_ms)),
        generator_flag=flag,
        mean_batch_live=float(sizes.mean()) if sizes.size else 0.0,
        mean_batch_predicted=predicted.mean_batch_size,
        service_ratio=ratio,
        service_batch=common,
        within_target=within,
        diagnosis=diagnosis,
        measured_ci_ms=ci,
    )


MIN_LIVE_SAMPLES = 5


def live_service_model(
    isolated: ServiceModel,
    batch_sizes: list[int],
    batch_service_s: list[float],
    max_batch: int,
    source: str = "batch times observed live",
) -> ServiceModel:
    """A service model from observed batch times (empirical per batch size: seen live, or a session curve); a
    size seen fewer than MIN_LIVE_SAMPLES times uses the isolated distribution scaled by the overall
    observed/isolated median ratio. Idle-gap effects are in the samples, so no paced table is kept."""
    sizes = np.asarray(batch_sizes)
    ms = np.asarray(batch_service_s) * 1000.0
    seq = isolated.seq_lens[0] if isolated.seq_lens else None
    table, _ = isolated.table_for(seq)
    ratios = [float(np.median(ms[sizes == b])) / table.median_ms(b) for b in set(batch_sizes)]
    scale = float(np.median(ratios)) if ratios else 1.0
    points: list[BatchLatency] = []
    for b in range(1, max_batch + 1):
        seen = ms[sizes == b]
        if seen.size >= MIN_LIVE_SAMPLES:
            points.append(samples_latency(b, seen))
        else:
            base, k = table.base(b)
            rng = np.random.default_rng(b)
            points.append(samples_latency(b, base.draw(rng, 256) * k * scale))
    return replace(
        isolated,
        label=f"{isolated.label}, {source}",
        tables={seq: LatencyTable(points)},
        max_batch=max_batch,
        busy_power=None,
        idle_power_w=None,
        power_reason="not used",
    )


def _figures_and_error(level: LevelResult, predicted: SimResult) -> tuple[Figures, dict[str, float]] | None:
    if not predicted.stable or predicted.latency_ms is None:
        return None
    pl = predicted.latency_ms
    f = Figures(p50_ms=pl.p50, p90_ms=pl.p90, p99_ms=pl.p99, throughput_rps=predicted.throughput_rps or 0.0)
    m = level.measured
    err = {k: (getattr(f, k) - getattr(m, k)) / getattr(m, k) * 100.0 for k in ("p50_ms", "p90_ms", "p99_ms")}
    return f, err


def with_back_to_back(level: LevelResult, predicted: SimResult) -> LevelResult:
    """The level with the prediction from the run's back-to-back samples alone added (paced runs)."""
    got = _figures_and_error(level, predicted)
    if got is None:
        return level
    return level.model_copy(update={"predicted_back_to_back": got[0], "error_back_to_back_pct": got[1]})


def with_live_service(level: LevelResult, predicted: SimResult) -> LevelResult:
    """The level with the prediction made from live batch times added; when those batch times are too slow for
    the offered rate, the level says so instead of leaving the figure blank."""
    got = _figures_and_error(level, predicted)
    if got is None:
        if predicted.stable:
            return level
        why = (
            f"fed the batch times observed live, the simulator's queue grows without bound (sustainable "
            f"{predicted.sustainable_rps:.3g} req/s <= offered {predicted.offered_rps:.3g} req/s): the batches "
            "ran slower live than measured in isolation"
        )
        return level.model_copy(update={"diagnosis": [*level.diagnosis, why]})
    f, err = got
    diagnosis = list(level.diagnosis)
    if level.diagnosis and abs(err["p50_ms"]) <= P50_TARGET_PCT and abs(err["p99_ms"]) <= P99_TARGET_PCT:
        diagnosis.append(
            f"fed the batch times observed live, the simulator is within target (p50 {err['p50_ms']:+.1f}%, "
            f"p99 {err['p99_ms']:+.1f}%): the queueing model holds and the error comes from the service times"
        )
    return level.model_copy(
        update={"predicted_live_service": f, "error_live_service_pct": err, "diagnosis": diagnosis}
    )


def with_drift(level: LevelResult, why: str | None) -> LevelResult:
    """The level flagged as measured while the canary moved (kept, not judged), or unchanged."""
    if why is None:
        return level
    return level.model_copy(update={"drift": why, "diagnosis": [*level.diagnosis, why]})


def with_run_prediction(
    level: LevelResult, predicted: SimResult, canary_vs_run: float | None, curve_vs_run: dict[int, float]
) -> LevelResult:
    """A level judged from a session curve, with the run's own prediction beside it; where that one misses, the
    reason the records give: each batch size's session-curve median over the run's, and the canary (the run's
    own back-to-back batch-1 setting) over the run's, which separates a host that changed from a harness that
    serves differently from the run's sweep."""
    got = _figures_and_error(level, predicted)
    if got is None:
        return level
    f, err = got
    diagnosis = list(level.diagnosis)
    if abs(err["p50_ms"]) > P50_TARGET_PCT or abs(err["p99_ms"]) > P99_TARGET_PCT:
        sizes = ", ".join(f"{r:.2f}x" for _, r in sorted(curve_vs_run.items()))
        why = (
            f"from the run's own curves the prediction is off (p50 {err['p50_ms']:+.1f}%, p99 "
            f"{err['p99_ms']:+.1f}%): the curve measured around this level took {sizes} the run's medians at "
            f"batch {', '.join(str(b) for b in sorted(curve_vs_run))}"
        )
        if canary_vs_run is not None:
            changed = abs(canary_vs_run - 1) > SERVICE_DRIFT
            why += (
                f"; the canary (the run's back-to-back batch-1 setting) took {canary_vs_run:.2f}x the run's mean, "
                + (
                    "so the host itself changed since the run"
                    if changed
                    else "so the host is as the run saw it"
                )
            )
        diagnosis.append(why)
    return level.model_copy(
        update={"predicted_from_run": f, "error_from_run_pct": err, "diagnosis": diagnosis}
    )


def verdict(levels: list[LevelResult]) -> str:
    """One sentence: did the prediction hold where it is judged, what the canary kept from judgement, and what
    happened above."""
    judged = [lv for lv in levels if lv.within_target is not None and lv.drift is None]
    ok = all(lv.within_target for lv in judged)
    head = (
        f"prediction within |p50| <= {P50_TARGET_PCT:g}% and |p99| <= {P99_TARGET_PCT:g}% at every load up to "
        f"{TARGET_UP_TO_LOAD:g}"
        if ok and judged
        else "prediction OFF TARGET at load "
        + ", ".join(f"{lv.load:g}" for lv in judged if not lv.within_target)
        if judged
        else "no level at or below the judged load"
    )
    drifted = [lv for lv in levels if lv.drift is not None]
    if drifted:
        head += f"; not judged (the canary moved): load {', '.join(f'{lv.load:g}' for lv in drifted)}"
    above = [
        lv for lv in levels if lv.within_target is None and lv.error_pct is not None and lv.drift is None
    ]
    tail = "; ".join(
        f"at {lv.load:g}: p50 {lv.error_pct['p50_ms']:+.1f}%, p99 {lv.error_pct['p99_ms']:+.1f}%"
        for lv in above
        if lv.error_pct
    )
    return head + (f"; {tail}" if tail else "")


def validation_filename(v: Validation) -> str:
    """validation-<run short id>-<precision>-b<max_batch>-<UTC time>.json."""
    short = v.run_id.removeprefix("sha256:")[:12]
    return f"validation-{short}-{v.precision}-b{v.max_batch}-{v.created_at:%Y%m%dT%H%M%SZ}.json"


VALIDATION_FILE: VersionedFile[Validation] = VersionedFile(
    Validation,
    what="validation file",
    version=3,
    error=ValidationFileError,
    max_bytes=MAX_VALIDATION_BYTES,
    filename=validation_filename,
    pattern="validation-*.json",
    # versions 2 and 3 only added fields whose defaults say what an older file did (null; judged from the run)
    migrations={1: lambda d: {**d, "schema_version": 2}, 2: lambda d: {**d, "schema_version": 3}},
)


def save_validation(v: Validation, folder: str | Path) -> Path:
    """Write the validation file atomically into folder (read back first)."""
    return VALIDATION_FILE.save(v, folder)


def load_validation(path: str | Path) -> Validation:
    """Read and validate a validation file."""
    return VALIDATION_FILE.read(path)


def scan_validations(run_id: str, folder: str | Path) -> tuple[list[Validation], list[tuple[Path, str]]]:
    """A run's validations in folder, newest first, and the files of that run that failed to load (with why)."""
    short = run_id.removeprefix("sha256:")[:12]
    found, broken = VALIDATION_FILE.scan(folder, f"validation-{short}-*.json")
    mine = [v for _, v in found if v.run_id == run_id]
    return sorted(mine, key=lambda v: v.created_at, reverse=True), broken


def validations_for(run_id: str, folder: str | Path) -> list[Validation]:
    """Every readable validation of a run in folder, newest first (scan_validations also names the broken)."""
    return scan_validations(run_id, folder)[0]


def cpu_count() -> int:
    """This machine's CPUs: what the load average it is compared with counts runnable tasks on. (A load
    generator pinned to one CPU by taskset shares the machine's load average with the engine on the other.)"""
    return os.cpu_count() or 1
