"""Soak mode: one point run for minutes to hours, cut into windows, with a peak-versus-steady verdict.

Capacity plans need the throughput a device sustains, not the one it reaches while cold and boosting. A soak
records throughput, latency percentiles, power, clocks and temperature per window and tests whether the
first minutes differ from the rest.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import torch

from measure.batch.sweep import QualityProbe
from measure.core import stats
from measure.core.parsing import SweepError
from measure.core.steady_state import ClockReading, Sampled
from measure.device import quality as qproxy
from measure.device.precision import math_mode, prepare, unsupported_reason
from measure.inprocess.plan import (
    FLEETWISE_VERSION,
    SweepPlan,
    SweepResult,
    compile_prepared,
    idle_power_for,
    point_meter,
    workload_record,
)
from measure.inprocess.point import build_point, make_step
from measure.run import (
    PointTelemetry,
    Quality,
    Run,
    Soak,
    SoakComparison,
    SoakWindow,
    SweepSpec,
    Unavailable,
    unavailable,
)
from measure.sensors import power as pw
from measure.sensors import telemetry as tm

EARLY_MAX_S = 120.0  # "the first minutes": at most two minutes, at most a fifth of the soak
EARLY_FRACTION = 0.2
DEFAULT_WINDOW_S = 10.0
_DURATION_RE = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


MAX_DURATION_S = 7 * 86_400.0  # a soak or window longer than a week is a typo, not a plan


def parse_duration(text: str) -> float:
    """'30m', '90s', '1h30m', '45' (seconds) into seconds; a one-line error otherwise."""
    m = _DURATION_RE.match(text or "")
    if not text or not text.strip() or m is None or not any(m.groups()):
        raise SweepError(f"malformed duration {text!r}: use e.g. 30m, 90s, 1h30m or a number of seconds")
    h, mnt, sec = (float(g) if g else 0.0 for g in m.groups())
    total = h * 3600 + mnt * 60 + sec
    if not 0 < total <= MAX_DURATION_S:
        raise SweepError(f"duration {text!r} is not in (0, {MAX_DURATION_S / 86_400:g} days]")
    return total


def early_seconds(duration_s: float, window_s: float) -> float:
    """Where 'early' ends: a fifth of the soak, at most two minutes, at least two windows."""
    return max(2 * window_s, min(EARLY_MAX_S, EARLY_FRACTION * duration_s))


def check_soak(plan: SweepPlan, duration_s: float, window_s: float) -> None:
    """A soak measures exactly one point, over at least four windows (two early, two after)."""
    r = plan.request
    if len(r.precisions) != 1 or len(r.batch_sizes) != 1 or len(plan.seq_lens) != 1:
        raise SweepError(
            "--soak measures one point: give exactly one --precision, one --batch, one --seq-len"
        )
    if window_s <= 0 or duration_s < 4 * window_s:
        raise SweepError(
            f"a soak of {duration_s:g} s with {window_s:g} s windows has fewer than 4 windows; "
            "lengthen it or shorten --soak-window"
        )


def windows(
    marks: list[tm.Mark],
    latencies_ms: np.ndarray,
    samples: list[pw.Sample],
    batch: int,
    window_s: float,
    energy_counter: bool,
) -> list[SoakWindow]:
    """Per-window figures from chunk edges (iterations, time, energy) and telemetry samples."""
    if len(marks) < 2:
        return []
    t0 = marks[0].t_s
    out: list[SoakWindow] = []
    first, k = 0, 0
    while first < len(marks) - 1:
        end = (k + 1) * window_s
        last = first
        while last + 1 < len(marks) and marks[last + 1].t_s - t0 <= end:
            last += 1
        if last == first:  # a chunk that crosses the boundary belongs to the window it ends in
            last = first + 1
        a, b = marks[first], marks[last]
        its, span = b.n - a.n, b.t_s - a.t_s
        if its > 0 and span > 0:
            lat = latencies_ms[a.n : b.n]
            inside = [s for s in samples if a.t_s < s.t_s <= b.t_s]  # half-open: no sample counts twice
            powers = [s.power_w for s in inside if s.power_w is not None]
            sm = [s.sm_mhz for s in inside if s.sm_mhz is not None]
            temps = [s.temp_c for s in inside if s.temp_c is not None]
            energy = None
            if energy_counter and a.energy_j is not None and b.energy_j is not None:
                energy = b.energy_j - a.energy_j
            elif powers:
                energy = float(np.mean(powers)) * span
            out.append(
                SoakWindow(
                    start_s=a.t_s - t0,
                    end_s=b.t_s - t0,
                    iterations=its,
                    throughput_items_per_s=its * batch / span,
                    latency_p50_ms=stats.percentile(lat, 50),
                    latency_p90_ms=stats.percentile(lat, 90),
                    latency_p99_ms=stats.percentile(lat, 99),
                    power_mean_w=float(np.mean(powers)) if powers else None,
                    energy_per_item_j=energy / (its * batch) if energy is not None and energy >= 0 else None,
                    sm_clock_mean_mhz=float(np.mean(sm)) if sm else None,
                    sm_clock_min_mhz=float(np.min(sm)) if sm else None,
                    temperature_max_c=float(np.max(temps)) if temps else None,
                    reasons_seen=sorted({r for s in inside for r in s.reasons}),
                )
            )
        first = last
        k = max(k + 1, int((marks[first].t_s - t0) // window_s))
    if len(out) > 1 and out[-1].end_s - out[-1].start_s < window_s / 2:
        out.pop()  # a stub at the end is mostly noise; its iterations still count in the point
    return out


COMPARED = {
    "throughput_items_per_s": "throughput",
    "latency_p50_ms": "p50 latency",
    "latency_p99_ms": "p99 latency",
    "power_mean_w": "power",
    "sm_clock_mean_mhz": "SM clock",
    "temperature_max_c": "temperature",
}


def verdict(ws: list[SoakWindow], early_s: float) -> tuple[list[SoakComparison], str]:
    """Early windows against the rest for every quantity measured, and one plain-language verdict."""
    early = [w for w in ws if w.start_s < early_s]
    rest = [w for w in ws if w.start_s >= early_s]
    if not early or not rest:
        return [], "too few windows to compare the first minutes with the rest"
    comps: list[SoakComparison] = []
    for attr in COMPARED:
        a = [getattr(w, attr) for w in early if getattr(w, attr) is not None]
        b = [getattr(w, attr) for w in rest if getattr(w, attr) is not None]
        if not a or not b:
            continue
        v = stats.early_vs_rest(a, b)
        comps.append(
            SoakComparison(
                quantity=attr,
                early_median=v.early_median,
                rest_median=v.rest_median,
                relative_change=v.relative_change,
                p_value=v.p_value,
                significant=v.significant,
            )
        )
    tput = next(c for c in comps if c.quantity == "throughput_items_per_s")
    differs = [COMPARED[c.quantity] for c in comps if c.significant]
    head = f"first {early_s:.3g} s vs the remaining {ws[-1].end_s - early_s:.0f} s"
    p = "n/a" if tput.p_value is None else f"{tput.p_value:.2g}"
    if tput.significant:
        text = (
            f"peak differs from steady state: throughput {tput.relative_change:+.1%} after the first "
            f"{early_s:.3g} s ({tput.early_median:.4g} -> {tput.rest_median:.4g} items/s, Mann-Whitney p={p}); "
            f"plan with the steady figure"
        )
    else:
        text = f"steady from the start: throughput {tput.relative_change:+.1%} ({head}, Mann-Whitney p={p})"
    if differs and not tput.significant:
        text += f"; but {', '.join(differs)} changed significantly"
    elif len(differs) > 1:
        text += f"; also changed: {', '.join(d for d in differs if d != 'throughput')}"
    return comps, text


def run_soak(
    sweep: SweepPlan,
    duration_s: float,
    window_s: float = DEFAULT_WINDOW_S,
    on_tick: Callable[[float], None] | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    clock: Callable[[], float] = time.perf_counter,
) -> SweepResult:
    """Run one point for `duration_s`; Ctrl-C ends it early with the windows so far (run marked incomplete)."""
    check_soak(sweep, duration_s, window_s)
    request, device, built = sweep.request, sweep.device, sweep.built
    precision, batch, seq = request.precisions[0], request.batch_sizes[0], sweep.seq_lens[0]
    reason = unsupported_reason(precision, device, built.module)
    if reason is not None:
        raise SweepError(f"cannot soak {precision}: {reason}")
    idle = idle_power_for(sweep)
    prepared = compile_prepared(prepare(precision, built.module, device), request.compile_mode)
    q = QualityProbe(sweep).entry(precision, seq, prepared)
    timer, _ = device.timer(request.scope, request.l2_flush)
    meter = point_meter(sweep, idle)
    chunks: list[np.ndarray] = []
    readings: list[tuple[int, ClockReading]] = []
    interrupted = False
    n = 0
    with torch.inference_mode(), math_mode(precision):
        step = make_step(prepared, built.inputs(batch, seq), device, request.scope)
        first = timer(step, 1)[0]
        fixed = timer(step, request.sampling.min_warmup - 1) if request.sampling.min_warmup > 1 else []
        per_iter = float(np.median([first, *fixed]))
        own_marks: list[tm.Mark] = []  # chunk edges when there is no meter to keep them (and the energy)

        def mark(n: int) -> None:
            if meter is not None:
                meter.mark(n)
            else:
                own_marks.append(tm.Mark(n, clock(), None))

        if meter is not None:
            meter.start()
        mark(0)
        t0 = clock()
        try:
            while clock() - t0 < duration_s:
                got = np.asarray(timer(step, request.sampling.chunk(per_iter)), dtype=np.float64)
                chunks.append(got)
                n += got.size
                per_iter = float(np.median(got))
                mark(n)
                if sweep.probe is not None:
                    # the clock probe is context; losing it must not end the soak
                    with contextlib.suppress(Exception):
                        readings.append((n, sweep.probe()))
                if on_tick is not None:
                    on_tick(clock() - t0)
        except KeyboardInterrupt:
            interrupted = True
        elapsed = clock() - t0
    if n == 0:
        if meter is not None:
            meter.abort()
        raise KeyboardInterrupt
    lat = np.concatenate(chunks)
    ss = stats.steady_state(lat)
    steady = lat[ss.warmup :]
    rel = stats.mean_ci_halfwidth(steady) / float(steady.mean())
    sampled = Sampled(
        first_iteration_ms=first,
        warmup_ms=[*fixed, *lat[: ss.warmup].tolist()],
        steady_ms=steady.tolist(),
        converged=bool(ss.settled and rel <= request.sampling.ci_target),
        stop_reason="soak: steady state never settled" if not ss.settled else f"soak: mean CI ±{rel:.1%}",
        elapsed_s=elapsed,
        rel_halfwidth=rel,
        drift=stats.drift(steady),
        detected_warmup=ss.warmup,
        clock_readings=readings,
        fixed_warmup=len(fixed),
    )
    upi = built.units_per_item(seq)
    telemetry: PointTelemetry | Unavailable = unavailable(sweep.sensor_reason)
    flags: list[str] = []
    samples: list[pw.Sample] = []
    marks = own_marks
    if meter is not None:
        telemetry, flags = meter.finish(ss.warmup, lat, batch, upi if upi > 0 else None)
        samples, marks = meter.samples, meter.marks
    point = build_point(
        precision,
        batch,
        seq,
        built,
        prepared,
        sampled,
        device.peak_memory(),
        sweep.clock_source,
        telemetry,
        flags,
    )
    counter = meter is not None and meter.sensor.energy_method is not None
    ws = windows(marks, lat, samples, batch, window_s, counter)
    actual = marks[-1].t_s - marks[0].t_s
    early_s = early_seconds(actual, window_s)
    comps, text = verdict(ws, early_s)
    methodology = sweep.methodology.model_copy(
        update={
            "notes": [
                *sweep.methodology.notes,
                f"soak: one point run back to back for {duration_s:g} s, cut into {window_s:g} s windows at "
                f"synchronised chunk edges; windows starting before {early_s:.3g} s are 'early' and compared "
                f"with the rest by a two-sided Mann-Whitney U test (alpha {stats.SOAK_ALPHA}, practical "
                f"threshold {stats.SOAK_MIN_RELATIVE_CHANGE:.0%})",
            ]
        }
    )
    run = Run(
        created_at=now(),
        fleetwise_version=FLEETWISE_VERSION,
        command=sweep.command,
        methodology=methodology,
        stack=sweep.stack,
        workload=workload_record(built),
        sweep=SweepSpec(
            precisions=[precision],
            batch_sizes=[batch],
            seq_lens=[seq] if seq is not None else None,
            complete=not interrupted,
        ),
        points=[point],
        idle_power=idle,
        quality=Quality(reference=qproxy.REFERENCE, inputs=qproxy.INPUTS_DOC, entries=[q]),
        soak=Soak(
            duration_s=actual, window_s=window_s, early_s=early_s, windows=ws, comparisons=comps, verdict=text
        )
        if ws
        else None,
    ).with_id()
    return SweepResult(run, interrupted)
