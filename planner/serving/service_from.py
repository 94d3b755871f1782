"""A service model built from evidence: a run's measured points (pessimistic or optimistic end of each CI,
paced where measured, warnings about the evidence), an assumed profile, or a model scaled by an assumption.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
from scipy.interpolate import PchipInterpolator

from measure.run import (
    Contention,
    Point,
    PointTelemetry,
    PowerStats,
    Run,
)
from planner.serving.profiles import AssumedProfile
from planner.serving.service import (
    BatchLatency,
    Bound,
    LatencyTable,
    PacedBatch,
    ServiceError,
    ServiceModel,
    _dist_latency,
    samples_latency,
)


def scaled_model(model: ServiceModel, factor: float) -> ServiceModel:
    """The model with every service time multiplied by factor: an explicit, labelled assumption (for example
    the live/isolated ratio a validation measured), never applied silently."""
    if factor == 1.0:
        return model
    if not 0.1 <= factor <= 10:
        raise ServiceError(f"a service-time scale must be in 0.1..10, got {factor:g}")

    def scale(p: BatchLatency) -> BatchLatency:
        return BatchLatency(
            p.batch, p.median_ms * factor, p.mean_ms * factor, lambda rng, k: p.draw(rng, k) * factor
        )

    tables = {
        s: LatencyTable(
            [scale(p) for p in t.points],
            {b: PacedBatch(pb.gaps_s, tuple(scale(d) for d in pb.dists)) for b, pb in t.paced.items()},
        )
        for s, t in model.tables.items()
    }
    note = f"service times x{factor:g}: an assumption supplied with the question, not part of the evidence"
    return replace(
        model, label=f"{model.label}, service x{factor:g}", tables=tables, warnings=[*model.warnings, note]
    )


def _pchip_power(points: dict[int, float]) -> Callable[[int], float]:
    bs = sorted(points)
    if len(bs) == 1:
        only = points[bs[0]]
        return lambda b: only
    f = PchipInterpolator(np.array(bs, dtype=np.float64), np.array([points[b] for b in bs]))
    lo, hi = bs[0], bs[-1]
    return lambda b: float(f(min(max(b, lo), hi)))


def from_profile(profile: AssumedProfile) -> ServiceModel:
    """A service model from an assumed profile (labelled assumed, never measured)."""
    tables: dict[int | None, list[BatchLatency]] = {}
    for p in profile.points:
        tables.setdefault(p.seq_len, []).append(_dist_latency(p.batch, p.latency))
    if None in tables and len(tables) > 1:
        raise ServiceError("a profile either gives seq_len on every point or on none")
    built = {s: LatencyTable(v) for s, v in tables.items()}
    max_b = min(t.max_batch for t in built.values())
    pw = profile.power_w
    return ServiceModel(
        source="assumed",
        label=f"assumed profile {profile.name} ({profile.device})",
        evidence=f"assumed-profile:{profile.name}",
        unit=profile.unit,
        units_per_item=None if None not in built else profile.units_per_item,
        tables=built,
        max_batch=max_b,
        limit_reason=f"the profile lists batches up to {max_b}",
        idle_power_w=pw.idle if pw else None,
        busy_power=_pchip_power(pw.busy) if pw else None,
        power_reason="" if pw else "the profile gives no power",
    )


def ci_scale(p: Point, bound: Bound) -> float:
    """The factor a point's samples are scaled by to sit at an end of its mean-latency 95% CI (1 = nominal)."""
    return _bound_scale(p.latency_ms.mean_ci95_halfwidth_rel if p.latency_ms is not None else None, bound)


def _bound_scale(rel: float | None, bound: Bound) -> float:
    if bound == "nominal" or rel is None:
        return 1.0
    return 1.0 + rel if bound == "pessimistic" else max(1.0 - rel, 0.5)


NO_PACING = "optimistic under intermittent load: no paced measurement"


def _paced(p: Point, bound: Bound) -> PacedBatch | None:
    """A point's service time by idle gap: its back-to-back samples at gap 0, then each paced bin."""
    if p.paced is None:
        return None
    b = p.batch_size
    dists = [samples_latency(b, np.asarray(p.raw_latencies_ms, dtype=np.float64) * ci_scale(p, bound))]
    gaps = [0.0]
    for k in p.paced.bins:
        if not k.raw_latencies_ms:
            continue
        scale = _bound_scale(k.latency_ms.mean_ci95_halfwidth_rel, bound)
        dists.append(samples_latency(b, np.asarray(k.raw_latencies_ms, dtype=np.float64) * scale))
        gaps.append(k.gap_ms / 1000.0)
    return PacedBatch(tuple(gaps), tuple(dists)) if len(gaps) > 1 else None


def _evidence_warnings(ok: list[Point], run: Run) -> list[str]:
    """What the planner must say about these points: unpaced (optimistic) and contended ones."""
    out = []
    unpaced = [p for p in ok if p.paced is None]
    if len(unpaced) == len(ok):
        out.append(
            f"{NO_PACING}: run {run.short_id()} was measured back to back only, so every batch is served at "
            "its peak speed (measure with --pacing)"
        )
    elif unpaced:
        out.append(
            f"{NO_PACING} at batch {', '.join(str(p.batch_size) for p in unpaced)} of run {run.short_id()}: "
            "batches drawn from those sizes are served at their back-to-back speed"
        )
    contended = [p for p in ok if "contended" in p.flags]
    if contended:
        why = next((p.contention.reason for p in contended if isinstance(p.contention, Contention)), None)
        out.append(
            f"run {run.short_id()}: batch {', '.join(str(p.batch_size) for p in contended)} measured while the "
            f"machine was contended ({why or 'see the run'}): those service times may be slow"
        )
    return out


def llm_not_served(run: Run) -> str:
    """Why a batch-serving plan cannot use an LLM run (prefill/decode steps are not batch service times)."""
    return (
        f"run {run.short_id()} ({run.workload.name}) measured LLM prefill/decode steps; the batch simulator "
        "cannot serve token generation from them: simulate or size them with a generative scenario (an llm block)"
    )


def from_run(
    run: Run,
    precision: str | None = None,
    exclude_flags: frozenset[str] = frozenset(),
    bound: Bound = "nominal",
) -> ServiceModel:
    """A service model from a measured run's ok points at one precision.

    `bound` scales each point's samples to the slow (pessimistic) or fast (optimistic) end of the 95% CI of
    its mean latency: the measurement's own uncertainty, carried into sizing.
    """
    if run.is_llm:
        raise ServiceError(llm_not_served(run))
    ok_all = [p for p in run.points if p.status == "ok" and p.raw_latencies_ms]
    precisions = sorted({p.precision for p in ok_all})
    if precision is None:
        if len(precisions) != 1:
            raise ServiceError(
                f"run {run.short_id()} has ok points in {', '.join(precisions) or 'no precision'}: pick --precision"
            )
        precision = precisions[0]
    ok = [p for p in ok_all if p.precision == precision and not (set(p.flags) & exclude_flags)]
    if not ok:
        raise ServiceError(
            f"run {run.short_id()} has no ok point at {precision} (has: {', '.join(precisions)})"
        )
    tables: dict[int | None, list[BatchLatency]] = {}
    paced: dict[int | None, dict[int, PacedBatch]] = {}
    for p in ok:
        tables.setdefault(p.seq_len, []).append(
            samples_latency(
                p.batch_size, np.asarray(p.raw_latencies_ms, dtype=np.float64) * ci_scale(p, bound)
            )
        )
        pb = _paced(p, bound)
        if pb is not None:
            paced.setdefault(p.seq_len, {})[p.batch_size] = pb
    built = {s: LatencyTable(v, paced.get(s, {})) for s, v in tables.items()}
    max_b = min(t.max_batch for t in built.values())
    larger = sorted(
        (p for p in run.points if p.precision == precision and p.status == "oom" and p.batch_size > max_b),
        key=lambda p: p.batch_size,
    )
    limit = f"largest ok batch measured at {precision} is {max_b}" + (
        f"; batch {larger[0].batch_size} ran out of memory" if larger else ""
    )
    idle = run.idle_power
    busy: dict[int, list[float]] = {}
    for p in ok:
        tel = p.telemetry
        if isinstance(tel, PointTelemetry) and isinstance(tel.power_w, PowerStats):
            busy.setdefault(p.batch_size, []).append(tel.power_w.mean_w)
    idle_w = getattr(idle, "power_w", None)
    if idle is None:
        reason = "the run predates power telemetry (format version 1)"
    elif idle_w is None:
        reason = f"idle power unavailable: {getattr(idle, 'unavailable', '')}"
    elif not busy:
        reason = "no point has a power reading"
    else:
        reason = ""
    workload = run.workload
    upi = {p.units_per_item for p in ok}
    return ServiceModel(
        source="measured",
        label=f"{workload.name} {precision} on {run.stack.device_name} (run {run.short_id()})"
        + ("" if bound == "nominal" else f", {bound} end of the service-time CI"),
        evidence=f"run:{run.id}",
        unit=workload.unit,
        units_per_item=None
        if workload.has_seq_len
        else (upi.pop() if len(upi) == 1 and None not in upi else 1.0),
        tables=built,
        max_batch=max_b,
        limit_reason=limit,
        idle_power_w=idle_w if not reason else None,
        busy_power=_pchip_power({b: float(np.mean(v)) for b, v in busy.items()}) if not reason else None,
        power_reason=reason,
        warnings=_evidence_warnings(ok, run),
    )
