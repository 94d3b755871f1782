"""One point measured: warm-up, steady-state samples, clocks, contention, energy, pacing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from measure.core import stats
from measure.core.pacing import PacedSamples, PacingSpec, parse_pacing, sample_paced
from measure.core.parsing import Progress as Progress
from measure.core.parsing import SweepError as SweepError
from measure.core.parsing import parse_int_list as parse_int_list
from measure.core.parsing import powers_of_two as powers_of_two
from measure.core.steady_state import ClockProbe, Sampled, Step, sample_point
from measure.core.summary import latency_summary as _summary
from measure.device.precision import Prepared, cast_inputs, math_mode
from measure.device.target import Device, is_oom
from measure.inprocess.plan import SweepRequest
from measure.run import (
    RAW_LATENCY_CAP,
    WARMUP_LATENCY_CAP,
    ClockSummary,
    Contention,
    DriftCheck,
    Paced,
    PacedBin,
    Point,
    PointTelemetry,
    Stat,
    Unavailable,
    unavailable,
)
from measure.sensors import contention as cont
from measure.sensors import telemetry as tm
from measure.sensors.nvml import SLOWDOWN_REASONS
from measure.workloads.builtin import BuiltWorkload


def _to_host(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.to("cpu")
    if isinstance(out, list | tuple):
        return [_to_host(o) for o in out]
    if isinstance(out, dict):
        return {k: _to_host(v) for k, v in out.items()}
    return out


def make_step(prepared: Prepared, host_inputs: tuple[torch.Tensor, ...], device: Device, scope: str) -> Step:
    """One timed iteration for the scope: forward only, or host copy + forward + copy back."""
    module = prepared.module
    if scope == "device-compute":
        staged = cast_inputs(tuple(t.to(device.torch_device) for t in host_inputs), prepared.input_dtype)
        return lambda: module(*staged)
    pinned = tuple(t.pin_memory() for t in host_inputs) if device.kind == "cuda" else host_inputs

    def step() -> Any:
        on_dev = tuple(t.to(device.torch_device, non_blocking=True) for t in pinned)
        return _to_host(module(*cast_inputs(on_dev, prepared.input_dtype)))

    return step


def build_point(
    sampled_precision: str,
    batch: int,
    seq_len: int | None,
    built: BuiltWorkload,
    prepared: Prepared,
    sampled: Sampled,
    peak_memory: Any,
    clock_source: str | Unavailable = unavailable("no clock probe"),
    telemetry: PointTelemetry | Unavailable | None = None,
    telemetry_flags: Sequence[str] = (),
    fields: dict[str, Any] | None = None,
) -> Point:
    """A run `Point` from one point's samples: summary, CI, throughput, clocks, thinned raw latencies.

    `fields` are further Point fields (an LLM point's phase, context and chunk)."""
    steady = np.asarray(sampled.steady_ms, dtype=np.float64)
    clocks, clock_flags = clock_summary(sampled, clock_source)
    summary = _summary(steady)
    items_per_s = batch * 1000.0 / summary.mean
    upi = built.units_per_item(seq_len)
    flops = built.flops_per_item(seq_len)
    raw, stride = stats.thin(steady, RAW_LATENCY_CAP)
    warm, _ = stats.thin(sampled.warmup_ms, WARMUP_LATENCY_CAP) if sampled.warmup_ms else ([], 1)
    d = sampled.drift
    return Point(
        precision=sampled_precision,
        batch_size=batch,
        seq_len=seq_len,
        status="ok" if sampled.converged else "unstable",
        reason=None if sampled.converged else sampled.stop_reason,
        flags=(["drift"] if d.detected else [])
        + clock_flags
        + [f for f in telemetry_flags if f not in clock_flags],
        precision_notes=prepared.notes,
        units_per_item=upi if upi > 0 else None,
        flops_per_item=flops,
        warmup_iterations_excluded=1 + len(sampled.warmup_ms),
        measured_iterations=int(steady.size),
        first_iteration_ms=sampled.first_iteration_ms,
        elapsed_s=sampled.elapsed_s,
        latency_ms=summary,
        throughput_items_per_s=items_per_s,
        throughput_units_per_s=items_per_s * upi if upi > 0 else None,
        achieved_tflops=flops * items_per_s / 1e12 if flops else None,
        peak_memory_bytes=peak_memory,
        clocks=clocks,
        telemetry=telemetry,
        drift=DriftCheck(
            detected=d.detected, p_value=d.p_value, relative_change=d.relative_change, reason=d.reason
        ),
        raw_latencies_ms=raw,
        raw_latencies_stride=stride,
        warmup_latencies_ms=warm,
        **(fields or {}),
    )


def not_run(
    precision: str,
    batch: int,
    seq_len: int | None,
    status: str,
    reason: str,
    flags: list[str],
    fields: dict[str, Any] | None = None,
) -> Point:
    """A point that was not measured (unsupported, out of memory, failed), with its reason."""
    return Point(
        precision=precision,
        batch_size=batch,
        seq_len=seq_len,
        status=status,
        reason=reason,
        flags=flags,
        **(fields or {}),
    )


def first_line(exc: BaseException) -> str:
    """An exception as one bounded line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def clock_summary(
    sampled: Sampled, source: str | Unavailable
) -> tuple[ClockSummary | Unavailable, list[str]]:
    """Clock summary of the steady window and the flags it raises (clock-change, throttled)."""
    if isinstance(source, Unavailable):
        return source, []
    if sampled.clock_error and not sampled.clock_readings:
        return unavailable(sampled.clock_error), []
    # readings are indexed by samples taken after the fixed warm-up; the steady window starts at detected_warmup
    readings = [(n, r.mhz, r.reasons) for n, r in sampled.clock_readings]
    verdict = stats.clock_stability(readings, sampled.detected_warmup, SLOWDOWN_REASONS)
    if verdict is None:
        return unavailable(sampled.clock_error or "no clock reading was taken"), []
    flags = (["clock-change"] if verdict.changed else []) + (["throttled"] if verdict.throttled else [])
    summary = ClockSummary(
        source=source,
        readings=verdict.readings,
        min_mhz=verdict.min_mhz,
        max_mhz=verdict.max_mhz,
        reasons_seen=list(verdict.reasons_seen),
    )
    return summary, flags


def measure_one(
    built: BuiltWorkload,
    prepared: Prepared,
    device: Device,
    precision: str,
    batch: int,
    seq_len: int | None,
    request: SweepRequest,
    probe: ClockProbe | None = None,
    clock_source: str | Unavailable = unavailable("no clock probe"),
    meter: tm.PointMeter | None = None,
    no_meter_reason: str = "no power sensor",
) -> Point:
    """Measure one point; allocation failures become `oom`, kernels the build lacks become `unsupported`."""

    def make() -> Step:
        return make_step(prepared, built.inputs(batch, seq_len), device, request.scope)

    return measure_point(
        make,
        built,
        prepared,
        device,
        precision,
        batch,
        seq_len,
        request,
        probe,
        clock_source,
        meter,
        no_meter_reason,
    )


def measure_point(
    make: Callable[[], Step],
    built: BuiltWorkload,
    prepared: Prepared,
    device: Device,
    precision: str,
    batch: int,
    seq_len: int | None,
    request: SweepRequest,
    probe: ClockProbe | None = None,
    clock_source: str | Unavailable = unavailable("no clock probe"),
    meter: tm.PointMeter | None = None,
    no_meter_reason: str = "no power sensor",
    fields: dict[str, Any] | None = None,
) -> Point:
    """Measure the step `make` builds (inside inference mode and the precision's math mode): the sampling,
    energy, paced bins and contention every point gets; OOM and missing kernels become not-run points."""
    timer, _ = device.timer(request.scope, request.l2_flush)
    before = cont.safe_read()
    spec = parse_pacing(request.pacing) if request.pacing else None
    bins: list[PacedSamples] = []
    try:
        with torch.inference_mode(), math_mode(precision):
            step = make()
            device.reset_peak_memory()
            if meter is not None:
                meter.start()
            sampled = sample_point(step, timer, request.sampling, probe=probe, observer=meter)
            if meter is not None:  # the energy window is the back-to-back one; paced bins follow it
                upi = built.units_per_item(seq_len)
                telemetry_done = meter.finish(
                    sampled.detected_warmup, sampled.after_fixed_warmup(), batch, upi if upi > 0 else None
                )
            if spec is not None:
                service_ms = float(np.median(sampled.steady_ms))
                for gap in spec.gaps_ms(service_ms):
                    bins.append(sample_paced(step, timer, gap, request.sampling, probe=probe))
            peak = device.peak_memory()
    except BaseException as exc:
        if meter is not None:
            meter.abort()
        if isinstance(exc, KeyboardInterrupt | SystemExit) or not isinstance(exc, Exception):
            raise
        device.release_memory()
        if is_oom(exc):
            return not_run(precision, batch, seq_len, "oom", first_line(exc), [], fields)
        why = f"failed to run ({first_line(exc)})"
        return not_run(precision, batch, seq_len, "unsupported", why, [], fields)
    contention = cont.summarise(before, cont.safe_read())
    telemetry: PointTelemetry | Unavailable = unavailable(no_meter_reason)
    flags: list[str] = []
    if meter is not None:
        telemetry, flags = telemetry_done
    point = build_point(
        precision, batch, seq_len, built, prepared, sampled, peak, clock_source, telemetry, flags, fields
    )
    extra: list[str] = ["contended"] if isinstance(contention, Contention) and contention.contended else []
    return point.model_copy(
        update={
            "contention": contention,
            "paced": paced_record(spec, bins, clock_source) if spec is not None and bins else None,
            "flags": point.flags + extra,
        }
    )


def paced_record(spec: PacingSpec, bins: list[PacedSamples], clock_source: str | Unavailable) -> Paced:
    """The run's record of a point's paced bins."""
    out = []
    for b in bins:
        raw, _ = stats.thin(b.latencies_ms, RAW_LATENCY_CAP)
        if b.sm_clock_mhz:
            mhz: Stat | Unavailable = Stat(
                mean=float(np.mean(b.sm_clock_mhz)), min=min(b.sm_clock_mhz), max=max(b.sm_clock_mhz)
            )
        else:
            why = b.clock_error or (
                clock_source.unavailable if isinstance(clock_source, Unavailable) else None
            )
            mhz = unavailable(why or "no clock reading")
        out.append(
            PacedBin(
                gap_ms=b.gap_ms,
                gap_actual_ms=_summary(np.asarray(b.gaps_ms)),
                latency_ms=_summary(np.asarray(b.latencies_ms)),
                converged=b.converged,
                stop_reason=b.stop_reason,
                elapsed_s=b.elapsed_s,
                sm_clock_mhz_at_start=mhz,
                raw_latencies_ms=raw,
            )
        )
    return Paced(mode=spec.mode, loads=list(spec.values) if spec.mode == "load" else None, bins=out)
