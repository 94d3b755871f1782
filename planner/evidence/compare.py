"""Comparability of two runs, and per-point differences tested on the raw samples.

Two results are compared only under a shared methodology: same workload (name, parameters, unit), same
methodology version and iteration scope, and for every shared precision the same precision policy (what
exactly ran). Device and software stack are what a comparison is *for*, so they are shown, not required.
A difference is called significant only when a two-sided Mann-Whitney U test on the raw steady-state
latencies rejects equality after Holm's correction over all shared points (alpha = ALPHA).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

from measure.run import Point, Run
from measure.run.types import ResultModel as _Out

ALPHA = 0.01
MIN_SAMPLES = 8  # fewer raw samples than this on either side: no test


class FieldDiff(_Out):
    """One field that differs between two runs (values as text)."""

    field: str
    a: str
    b: str


def _key_fields(run: Run) -> dict[str, Any]:
    w, m = run.workload, run.methodology
    return {
        "workload.name": w.name,
        "workload.parameters": dict(sorted(w.parameters.items())),
        "workload.unit": w.unit,
        "methodology.methodology_version": m.methodology_version,
        "methodology.iteration_scope": m.iteration_scope,
    }


def comparability_key(run: Run) -> str:
    """A string equal for two runs exactly when `differences` finds no methodology-level difference."""
    return repr(sorted(_key_fields(run).items()))


def _precision_notes(run: Run) -> dict[str, str]:
    notes: dict[str, str] = {}
    for p in run.points:
        if p.status == "ok" and p.precision not in notes:
            notes[p.precision] = p.precision_notes or ""
    return notes


def differences(a: Run, b: Run) -> list[FieldDiff]:
    """Fields that make the two runs not comparable (empty: comparable)."""
    fa, fb = _key_fields(a), _key_fields(b)
    out = [FieldDiff(field=k, a=str(fa[k]), b=str(fb[k])) for k in fa if fa[k] != fb[k]]
    na, nb = _precision_notes(a), _precision_notes(b)
    for prec in sorted(set(na) & set(nb)):
        if na[prec] != nb[prec]:
            out.append(FieldDiff(field=f"precision policy ({prec})", a=na[prec], b=nb[prec]))
    return out


def context_differences(a: Run, b: Run) -> list[FieldDiff]:
    """Stack fields that differ: what the comparison is about, shown beside the verdict."""
    keys = (
        "device_name",
        "torch_version",
        "torch_num_threads",
        "compile_mode",
        "driver_version",
        "cpu_model",
    )
    sa, sb = a.stack.model_dump(mode="json"), b.stack.model_dump(mode="json")
    return [FieldDiff(field=f"stack.{k}", a=str(sa[k]), b=str(sb[k])) for k in keys if sa[k] != sb[k]]


class PointDiff(_Out):
    """One shared point: throughput and latency of A and B, their relative difference and its test."""

    precision: str
    batch_size: int
    seq_len: int | None
    throughput_a: float
    throughput_b: float
    throughput_diff_pct: float  # (B - A) / A
    p50_ms_a: float
    p50_ms_b: float
    p99_ms_a: float
    p99_ms_b: float
    p50_diff_pct: float
    p_value: float | None  # Mann-Whitney U on raw latencies, Holm-adjusted
    significant: bool
    verdict: str


class Comparison(_Out):
    """Verdict first, then the points both runs measured ok."""

    run_a: str
    run_b: str
    comparable: bool
    differences: list[FieldDiff]
    context: list[FieldDiff]
    unit: str
    points: list[PointDiff]
    alpha: float
    test: str


def _holm(p: list[float]) -> list[float]:
    order = np.argsort(p)
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()


def compare_runs(a: Run, b: Run) -> Comparison:
    """Comparability verdict and, per shared ok point, the differences and whether they exceed the noise."""
    diffs = differences(a, b)
    pa = {p.key: p for p in a.points if p.status == "ok"}
    pb = {p.key: p for p in b.points if p.status == "ok"}
    shared = sorted(set(pa) & set(pb), key=lambda k: (k[0], k[2] or 0, k[1]))
    raw_p: list[float | None] = []
    for k in shared:
        xa, xb = pa[k].raw_latencies_ms, pb[k].raw_latencies_ms
        if len(xa) >= MIN_SAMPLES and len(xb) >= MIN_SAMPLES:
            raw_p.append(float(sps.mannwhitneyu(xa, xb, alternative="two-sided").pvalue))
        else:
            raw_p.append(None)
    tested = [p for p in raw_p if p is not None]
    adjusted = iter(_holm(tested)) if tested else iter([])
    adj_p = [next(adjusted) if p is not None else None for p in raw_p]
    rows = [_row(pa[k], pb[k], p, not diffs) for k, p in zip(shared, adj_p, strict=True)]
    return Comparison(
        run_a=a.id,
        run_b=b.id,
        comparable=not diffs,
        differences=diffs,
        context=context_differences(a, b),
        unit=a.workload.unit,
        points=rows,
        alpha=ALPHA,
        test="two-sided Mann-Whitney U on raw steady-state latencies, Holm-adjusted over the shared points",
    )


def _pct(a: float, b: float) -> float:
    return (b - a) / a * 100.0


def _row(a: Point, b: Point, p: float | None, comparable: bool) -> PointDiff:
    assert a.latency_ms is not None and b.latency_ms is not None
    ta = a.throughput_units_per_s or a.throughput_items_per_s or 0.0
    tb = b.throughput_units_per_s or b.throughput_items_per_s or 0.0
    sig = comparable and p is not None and p < ALPHA
    if not comparable:
        verdict = "not comparable"
    elif p is None:
        verdict = "too few samples to test"
    elif not sig:
        verdict = "no significant difference"
    else:
        verdict = "B faster" if b.latency_ms.median < a.latency_ms.median else "A faster"
    return PointDiff(
        precision=a.precision,
        batch_size=a.batch_size,
        seq_len=a.seq_len,
        throughput_a=ta,
        throughput_b=tb,
        throughput_diff_pct=_pct(ta, tb),
        p50_ms_a=a.latency_ms.median,
        p50_ms_b=b.latency_ms.median,
        p99_ms_a=a.latency_ms.p99,
        p99_ms_b=b.latency_ms.p99,
        p50_diff_pct=_pct(a.latency_ms.median, b.latency_ms.median),
        p_value=p,
        significant=sig,
        verdict=verdict,
    )


P_VALUE_FLOOR = 1e-6  # below this a p-value's digits say nothing a reader can use


def p_value_text(p: float | None) -> str:
    """A p-value as a reader needs it: two significant digits, '< 1e-06' below the floor, '-' when untested."""
    if p is None:
        return "-"
    return f"< {P_VALUE_FLOOR:g}" if p < P_VALUE_FLOOR else f"{p:.2g}"
