"""A capacity curve from imported engine benchmarks: the levels of every file of one tool, model, engine,
hardware and replica shape, as one replica's reported latency percentiles against the request rate it served.

The capacity at a set of SLOs is the rate at which the curve first breaks one of them: the highest level of
the contiguous run of passing levels from the lowest rate, then linear interpolation of each broken SLO's
figure towards the first failing level. Latency grows convexly with rate as queues build, so the chord between
two levels lies above the curve and the interpolated capacity errs low, never high. Beyond the highest
measured rate nothing is claimed: a curve whose top level passes gives that rate as an upper bound on what
one replica needs. A level that passes again above a failing one is named (a noisy or non-monotone sweep) and
not used: the first crossing is the capacity.

Only levels of one traffic family make a curve: open-loop rate levels when there are any (what a fleet's
arrivals are), otherwise closed-loop levels at their achieved rate, which is stated; the rest are left out by
name. The x of a level is the request rate the tool measured as completed (else the rate it offered).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from measure.run.types import ResultModel
from planner.evidence.engine_benchmark import BenchLevel, EngineBenchmark, Stat
from planner.traffic.scenario import Slo

PERCENTILE_FIELDS = {50.0: "p50", 90.0: "p90", 95.0: "p95", 99.0: "p99"}
METRICS = ("ttft", "tpot", "itl", "e2e")
FAMILIES = (
    ("open", ("rate",), "open-loop rate levels"),
    ("closed", ("concurrency", "synchronous"), "closed-loop levels (at the rate they achieved)"),
    ("other", ("throughput", "unknown"), "levels sent all at once or of unknown traffic"),
)


class CurvePoint(ResultModel):
    """One benchmark level as a point of the curve: the rate one replica served and what the tool reported."""

    benchmark_id: str
    tool: str
    level: str
    rate_rps: float
    stats: dict[str, dict[str, float]]  # metric -> {"p50": ms, ...}, as the tool reported
    prompt_mean: float | None = None
    output_mean: float | None = None

    @property
    def name(self) -> str:
        return f"{self.tool} {self.benchmark_id.removeprefix('sha256:')[:12]} {self.level}"

    def figure(self, slo: Slo) -> float | str:
        """The tool's figure for the SLO's metric and percentile, or why the level cannot be judged on it."""
        key = PERCENTILE_FIELDS.get(slo.percentile)
        if key is None:
            return f"the tools report p50/p90/p95/p99, not p{slo.percentile:g}"
        got = self.stats.get(slo.metric, {}).get(key)
        return got if got is not None else f"{self.level} reports no {slo.metric} {key}"


class Capacity(ResultModel):
    """What one replica sustains at the SLOs on the curve, and the levels that say so."""

    rate_rps: float | None
    below: str | None  # the highest passing level at or below the capacity
    above: str | None  # the first failing level it was interpolated towards (None: not interpolated)
    figures: dict[str, float | None]  # each SLO's figure at the capacity (interpolated when it was)
    why: str | None
    warnings: list[str]


def _stats(s: Stat | None) -> dict[str, float]:
    return s.figures() if s is not None else {}


def _point(b: EngineBenchmark, lv: BenchLevel) -> CurvePoint | None:
    rate = lv.request_rps or lv.rate_rps
    if not rate or lv.completed == 0:
        return None
    return CurvePoint(
        benchmark_id=b.id,
        tool=b.tool,
        level=lv.label,
        rate_rps=rate,
        stats={m: st for m in METRICS if (st := _stats(getattr(lv, m)))},
        prompt_mean=lv.prompt_tokens.mean if lv.prompt_tokens else None,
        output_mean=lv.output_tokens.mean if lv.output_tokens else None,
    )


def curve_key(b: EngineBenchmark) -> tuple[str, str, str, str, str]:
    """Benchmarks with one key are one engine serving one model on one replica shape: one curve."""
    return (b.tool, b.model, b.engine, b.hardware, b.replica.label())


def group_benchmarks(benchmarks: Iterable[EngineBenchmark]) -> list[list[EngineBenchmark]]:
    """The benchmarks by curve, curves in the order first seen and files by their slowest level (whatever order
    they were given in); a file given twice counts once."""
    groups: dict[tuple[str, ...], dict[str, EngineBenchmark]] = {}
    for b in benchmarks:
        groups.setdefault(curve_key(b), {}).setdefault(b.id, b)

    def slowest(b: EngineBenchmark) -> tuple[float, str]:
        return min((lv.request_rps or lv.rate_rps or 0.0 for lv in b.levels), default=0.0), b.id

    return [sorted(g.values(), key=slowest) for g in groups.values()]


def curve_points(benchmarks: Sequence[EngineBenchmark]) -> tuple[list[CurvePoint], list[str]]:
    """The points of one curve, by rate, and a note for every level left out and why."""
    notes: list[str] = []
    family, traffics, what = next(
        (f for f in FAMILIES if any(lv.traffic in f[1] for b in benchmarks for lv in b.levels)), FAMILIES[-1]
    )
    chosen = [(b, lv) for b in benchmarks for lv in b.levels if lv.traffic in traffics]
    left = [lv for b in benchmarks for lv in b.levels if lv.traffic not in traffics]
    if left:
        notes.append(
            f"left out of the curve: {len(left)} level(s) of other traffic than its {what} "
            f"({', '.join(lv.label for lv in left[:4])}{', ...' if len(left) > 4 else ''})"
        )
    if family == "closed":
        notes.append(
            "the curve is of closed-loop levels: a closed loop's latency at a given throughput understates an "
            "open-loop fleet's queueing"
        )
    points = []
    for b, lv in chosen:
        p = _point(b, lv)
        if p is None:
            notes.append(f"left out of the curve: level {lv.label} completed nothing or has no rate")
        else:
            points.append(p)
    return sorted(points, key=lambda p: p.rate_rps), notes


def _judge(p: CurvePoint, slos: Sequence[Slo]) -> tuple[bool, dict[str, float | None], str | None]:
    figures: dict[str, float | None] = {}
    ok, reason = True, None
    for s in slos:
        got = p.figure(s)
        if isinstance(got, str):
            figures[s.label()] = None
            ok, reason = False, reason or got
        else:
            figures[s.label()] = got
            ok &= got <= s.threshold_ms
    return ok, figures, reason


def capacity(points: Sequence[CurvePoint], slos: Sequence[Slo]) -> Capacity:
    """The rate one replica sustains while every SLO holds, on this curve (points sorted by rate)."""
    if not points:
        return Capacity(
            rate_rps=None, below=None, above=None, figures={}, why="no level on the curve", warnings=[]
        )
    judged = [_judge(p, slos) for p in points]
    if not judged[0][0]:
        _, figs, reason = judged[0]
        missed = [s.label() for s in slos if (v := figs[s.label()]) is not None and v > s.threshold_ms]
        why = f"the lowest level ({points[0].name}, {points[0].rate_rps:.3g} req/s) " + (
            f"cannot be judged: {reason}" if reason and not missed else f"already misses {'; '.join(missed)}"
        )
        return Capacity(rate_rps=None, below=None, above=None, figures=figs, why=why, warnings=[])
    k = 0
    while k + 1 < len(points) and judged[k + 1][0]:
        k += 1
    lo, (_, lo_figs, _) = points[k], judged[k]
    warnings: list[str] = []
    if k + 1 == len(points):
        warnings.append(
            f"the curve's fastest level ({lo.name}, {lo.rate_rps:.3g} req/s) met every SLO: one replica may "
            "sustain more, so the replica count is an upper bound (nothing is extrapolated)"
        )
        return Capacity(
            rate_rps=lo.rate_rps, below=lo.name, above=None, figures=lo_figs, why=None, warnings=warnings
        )
    hi, (_, hi_figs, _) = points[k + 1], judged[k + 1]
    again = [p.name for p, j in zip(points[k + 2 :], judged[k + 2 :], strict=True) if j[0]]
    if again:
        warnings.append(
            f"level(s) {', '.join(again[:3])} met the SLOs again above the failing {hi.name}: the sweep is not "
            "monotone (noise or a changed setup); the capacity is taken at the first crossing"
        )
    cap, span = hi.rate_rps, hi.rate_rps - lo.rate_rps
    for s in slos:
        a, b = lo_figs[s.label()], hi_figs[s.label()]
        if b is None or a is None or span <= 0:
            cap = lo.rate_rps  # nothing to interpolate with: the passing level is all that is known
        elif b > s.threshold_ms:
            cap = min(cap, lo.rate_rps + (s.threshold_ms - a) / (b - a) * span)
    t = (cap - lo.rate_rps) / span if span > 0 else 0.0
    figures = {
        label: (a + t * (b - a) if a is not None and b is not None else a)
        for label, a, b in ((s.label(), lo_figs[s.label()], hi_figs[s.label()]) for s in slos)
    }
    return Capacity(
        rate_rps=cap,
        below=lo.name,
        above=hi.name if cap > lo.rate_rps else None,
        figures=figures,
        why=None,
        warnings=warnings,
    )


def replicas_at(
    points: Sequence[CurvePoint], offered_rps: float, slos: Sequence[Slo]
) -> tuple[int | None, Capacity]:
    """The fewest replicas of this curve for the offered rate at these SLOs (None: the curve cannot meet them),
    with the capacity that says so: what the SLO explorer asks of a benchmark plan at each threshold."""
    cap = capacity(points, slos)
    if cap.rate_rps is None:
        return None, cap
    return max(1, math.ceil(offered_rps / cap.rate_rps)), cap
