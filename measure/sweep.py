"""A measurement sweep: every (precision, sequence length, batch size) point of a workload on a device.

OOM at a batch size skips the larger batches of that precision; an unsupported precision is recorded with
its reason; Ctrl-C returns the points done so far as an incomplete run that `resume` continues.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from measure import contention as cont
from measure import quality as qproxy
from measure import stats
from measure import telemetry as tm
from measure.clocks import probe_for
from measure.device import Device, is_oom, parse_device
from measure.engine import ClockProbe, Sampled, SamplingConfig, Step, sample_point
from measure.nvml import SLOWDOWN_REASONS
from measure.pacing import PacedSamples, PacingSpec, parse_pacing, sample_paced
from measure.parsing import Progress as Progress
from measure.parsing import SweepError as SweepError
from measure.parsing import parse_int_list as parse_int_list
from measure.parsing import powers_of_two as powers_of_two
from measure.precision import Prepared, cast_inputs, math_mode, prepare, unsupported_reason
from measure.run import (
    RAW_LATENCY_CAP,
    WARMUP_LATENCY_CAP,
    ClockSummary,
    Contention,
    DriftCheck,
    IdlePower,
    Methodology,
    Paced,
    PacedBin,
    Point,
    PointTelemetry,
    Quality,
    QualityProxy,
    Run,
    Stack,
    Stat,
    StoppingRule,
    SweepSpec,
    Unavailable,
    WarmupPolicy,
    unavailable,
)
from measure.run import Workload as WorkloadRecord
from measure.stack import capture_stack
from measure.summary import latency_summary as _summary
from measure.workloads import BuiltWorkload, ParamValue, build, builtin_names

try:
    FLEETWISE_VERSION = importlib.metadata.version("fleetwise")
except importlib.metadata.PackageNotFoundError:  # running from a source tree that was never installed
    FLEETWISE_VERSION = "unknown (not installed)"
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


SCOPE_CONTENTS = {
    "end-to-end": "copy of the batch's inputs from host to device (pinned memory on CUDA), the forward pass, "
    "the copy of the outputs back to the host, and the Python overhead around them",
    "device-compute": "the forward pass only, with inputs already on the device; nothing copied",
}


@dataclass(frozen=True)
class SweepRequest:
    """Everything that defines a sweep; stored in the run so the run can be resumed."""

    workload: str
    params: dict[str, ParamValue]
    device: str
    precisions: list[str]
    batch_sizes: list[int]
    seq_lens: list[int] | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    scope: str = "end-to-end"
    l2_flush: bool = False
    compile_mode: str = "none"
    threads: int | None = None
    idle_seconds: float = tm.IDLE_SECONDS
    energy_min_window_s: float = tm.MIN_ENERGY_WINDOW_S
    energy_quantization_target: float = tm.ENERGY_QUANTIZATION_TARGET
    pacing: str | None = None  # --pacing text: each point is measured also after idle gaps


@dataclass
class SweepResult:
    """The run (complete or not) and whether Ctrl-C cut it short."""

    run: Run
    interrupted: bool


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
    clocks, clock_flags = _clock_summary(sampled, clock_source)
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


def _not_run(
    precision: str,
    batch: int,
    seq_len: int | None,
    status: str,
    reason: str,
    flags: list[str],
    fields: dict[str, Any] | None = None,
) -> Point:
    return Point(
        precision=precision,
        batch_size=batch,
        seq_len=seq_len,
        status=status,
        reason=reason,
        flags=flags,
        **(fields or {}),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _clock_summary(
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
            return _not_run(precision, batch, seq_len, "oom", _first_line(exc), [], fields)
        why = f"failed to run ({_first_line(exc)})"
        return _not_run(precision, batch, seq_len, "unsupported", why, [], fields)
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


def methodology_for(request: SweepRequest, timer_name: str) -> Methodology:
    """The methodology block stored with every run of this request."""
    cfg = request.sampling
    return Methodology(
        warmup=WarmupPolicy(
            min_excluded_iterations=cfg.min_warmup,
            detection="mser-5",
            detection_parameters={
                "batch": float(stats.MSER_BATCH),
                "max_truncation_fraction": stats.MSER_MAX_TRUNCATION_FRACTION,
            },
            compilation_excluded=True,
        ),
        stopping=StoppingRule(
            ci_target_relative=cfg.ci_target,
            confidence=stats.CONFIDENCE,
            ci_method=f"max of the i.i.d. t-interval and a {stats.BATCH_MEANS_BATCHES}-batch-means t-interval "
            f"(batch means from {stats.BATCH_MEANS_MIN_SAMPLES} samples)",
            min_iterations=cfg.min_iterations,
            max_iterations=cfg.max_iterations,
            min_seconds=cfg.min_seconds,
            max_seconds=cfg.max_seconds,
        ),
        timer=timer_name,
        iteration_scope=request.scope,
        l2_flush=request.l2_flush,
        percentile_method=stats.PERCENTILE_METHOD_DOC,
        p99_ci_method="distribution-free 95% CI from order statistics with binomial ranks; a bound is null "
        "when n is too small to identify it (the upper bound of p99 needs n >= 368)",
        drift_test=f"Mann-Kendall on {stats.BATCH_MEANS_BATCHES} batch means of the steady window, "
        f"alpha {stats.DRIFT_ALPHA}, flagged when the fitted change is >= {stats.DRIFT_MIN_RELATIVE_CHANGE:.0%}; "
        f"clocks read between sampling chunks: 'clock-change' when they move by more than "
        f"{stats.CLOCK_CHANGE_TOLERANCE:.0%} across the steady window, 'throttled' on any slowdown reason "
        f"({', '.join(sorted(SLOWDOWN_REASONS))})",
        raw_latency_policy=f"steady-state latencies thinned by a fixed stride to at most {RAW_LATENCY_CAP}; "
        f"warm-up latencies to at most {WARMUP_LATENCY_CAP}",
        inference_mode="torch.inference_mode() with module.eval(); random weights, nothing downloaded",
        notes=[
            f"one timed iteration ({request.scope}): {SCOPE_CONTENTS[request.scope]}",
            "throughput_items_per_s = batch_size / mean steady-state latency of back-to-back iterations (one stream)",
            "the first iteration (and any compilation) is excluded from the samples and from the time budget",
            "inputs are random tensors of the workload's shape, generated once per point before timing",
        ],
        energy_policy=ENERGY_POLICY.format(
            hz=1 / tm.SAMPLE_INTERVAL_S,
            min_window=request.energy_min_window_s,
            target=request.energy_quantization_target,
            idle=request.idle_seconds,
        ),
    )


ENERGY_POLICY = (
    "a telemetry thread samples the device at {hz:.0f} Hz during every point (NVML: instantaneous power where the "
    "GPU has it, SM/memory clocks, temperature, utilization, clock-event reasons; CPU: Intel RAPL package energy). "
    "Energy per point = difference of the cumulative energy counter (NVML total energy, or RAPL with wrap-around) "
    "between two chunk edges where the device is synchronised, over the steady window; the window is extended "
    "until it is >= {min_window:g} s and >= the counter's measured update period / {target:g}. Without a counter, "
    "power samples are integrated; without either, energy is unavailable with the reason. Energy covers the "
    "device only (whole GPU board, or CPU packages): host, DRAM, cooling and PUE are not included. Idle power is "
    "measured once per run over {idle:g} s with nothing queued. Utilization is context, never a performance figure."
)


def workload_record(built: BuiltWorkload) -> WorkloadRecord:
    """The run file's record of a built workload."""
    return WorkloadRecord(
        name=built.name,
        source=built.source,
        description=built.description,
        parameters=built.parameters,
        unit=built.unit,
        microbenchmark=built.microbenchmark,
        has_seq_len=built.has_seq_len,
    )


def check_resumable(old: Run, stack: Stack) -> None:
    """Refuse to mix points from a different machine or software stack into one run."""
    fields = (
        "device_name",
        "device_kind",
        "torch_version",
        "torch_build",
        "hostname",
        "cpu_model",
        "torch_num_threads",
    )
    diff = [
        f"{f}: {getattr(old.stack, f)!r} vs {getattr(stack, f)!r}"
        for f in fields
        if getattr(old.stack, f) != getattr(stack, f)
    ]
    if diff:
        raise SweepError("cannot resume on a different stack (" + "; ".join(diff) + ")")


def workload_of_run(run: Run, user_workload: str | None = None) -> str:
    """The workload to build for a run: a built-in looked up by name in the registry, or a user factory only
    when the user names it (`user_workload`) and it is the one the run records. A file never chooses code."""
    w = run.workload
    if w.source == "builtin":
        if w.name not in builtin_names():
            raise SweepError(
                f"run {run.short_id()} names built-in workload {w.name[:80]!r}, which is not one of "
                f"{', '.join(builtin_names())}"
            )
        if user_workload is not None and user_workload != w.name:
            raise SweepError(f"--workload {user_workload} does not match the run's workload {w.name}")
        return w.name
    if user_workload is None:
        raise SweepError(
            f"run {run.short_id()} measured the user workload {w.source}; running it imports and calls that "
            f"code, so name it yourself to confirm: --workload {w.source}"
        )
    if user_workload != w.source:
        raise SweepError(f"--workload {user_workload} does not match the run's user workload {w.source}")
    return user_workload


def request_from_run(run: Run, user_workload: str | None = None) -> SweepRequest:
    """Rebuild the sweep request an (interrupted) run was made from (see workload_of_run for the workload)."""
    if run.is_llm:
        raise SweepError(
            f"run {run.short_id()} is an LLM run: resuming one is not supported; measure the grid again"
        )
    st = run.methodology.stopping
    return SweepRequest(
        workload=workload_of_run(run, user_workload),
        params=dict(run.workload.parameters),
        device=run.stack.device,
        precisions=list(run.sweep.precisions),
        batch_sizes=list(run.sweep.batch_sizes),
        seq_lens=list(run.sweep.seq_lens) if run.sweep.seq_lens else None,
        sampling=SamplingConfig(
            ci_target=st.ci_target_relative,
            min_iterations=st.min_iterations,
            max_iterations=st.max_iterations,
            min_seconds=st.min_seconds,
            max_seconds=st.max_seconds,
            min_warmup=run.methodology.warmup.min_excluded_iterations,
        ),
        scope=run.methodology.iteration_scope,
        l2_flush=run.methodology.l2_flush,
        compile_mode=compile_mode_of(run.stack.compile_mode),
        threads=run.stack.torch_num_threads,
        pacing=run.sweep.pacing,
    )


def compile_description(mode: str) -> str:
    """How the stack block records a --compile mode."""
    return "eager" if mode == "none" else f"torch.compile(mode={mode})"


def compile_mode_of(description: str) -> str:
    """The --compile mode a stack's compile description came from (inverse of compile_description)."""
    if description == "eager":
        return "none"
    return description.removeprefix("torch.compile(mode=").removesuffix(")")


def compile_prepared(prepared: Prepared, mode: str) -> Prepared:
    """The prepared module wrapped in torch.compile for a --compile mode (unchanged for 'none')."""
    if mode == "none":
        return prepared
    compiled = torch.compile(prepared.module, mode=None if mode == "default" else mode, dynamic=False)
    return replace(prepared, module=compiled, notes=prepared.notes + f"; torch.compile(mode={mode})")  # type: ignore[arg-type]


@dataclass
class SweepPlan:
    """A validated sweep, ready to execute: every input error has been raised before any measuring."""

    request: SweepRequest
    device: Device
    built: BuiltWorkload
    seq_lens: list[int | None]
    stack: Stack
    methodology: Methodology
    resume: Run | None
    command: list[str]
    probe: ClockProbe | None
    clock_source: str | Unavailable
    sensor: tm.Sensor | None = None
    sensor_reason: str = "no power sensor"


def plan_sweep(
    request: SweepRequest,
    *,
    resume: Run | None = None,
    command: Sequence[str] | None = None,
    nvml_module: Any | None = None,
    built: BuiltWorkload | None = None,
    powercap_root: Path = Path("/sys/class/powercap"),
) -> SweepPlan:
    """Validate a request (device, workload, lists, resume compatibility) and capture the stack."""
    if request.scope not in ("device-compute", "end-to-end"):
        raise SweepError(f"unknown iteration scope {request.scope!r}: use device-compute or end-to-end")
    if request.compile_mode not in COMPILE_MODES:
        raise SweepError(
            f"unknown compile mode {request.compile_mode!r}: choose from {', '.join(COMPILE_MODES)}"
        )
    if request.pacing:
        parse_pacing(request.pacing)  # a bad --pacing is named before anything is measured
    if request.threads is not None and request.threads <= 0:
        raise SweepError(f"threads must be positive, got {request.threads}")
    if not (0 <= request.idle_seconds <= 600):
        raise SweepError(f"idle seconds must be in 0..600, got {request.idle_seconds:g}")
    if not (0 < request.energy_min_window_s <= 120):
        raise SweepError(f"energy window must be in (0, 120] seconds, got {request.energy_min_window_s:g}")
    if not (0 < request.energy_quantization_target < 1):
        raise SweepError(f"energy error bound must be in (0, 1), got {request.energy_quantization_target:g}")
    device = parse_device(request.device)
    built = built or build(request.workload, request.params)
    if request.seq_lens and not built.has_seq_len:
        raise SweepError(f"workload {built.name} has no sequence length; drop --seq-len")
    seq_lens: list[int | None] = (
        list(request.seq_lens) if request.seq_lens else [built.default_seq_len if built.has_seq_len else None]
    )
    if built.has_seq_len and seq_lens == [None]:
        raise SweepError(f"workload {built.name} needs --seq-len")
    if request.threads is not None:
        torch.set_num_threads(request.threads)
    stack = capture_stack(device, compile_description(request.compile_mode), nvml_module=nvml_module)
    if resume is not None:
        check_resumable(resume, stack)
    _, timer_name = device.timer(request.scope, request.l2_flush)
    uuid = stack.device_uuid if isinstance(stack.device_uuid, str) else None
    probe, clock_source = probe_for(device.kind, device.index, uuid, nvml_module)
    sensor, sensor_reason = tm.sensor_for(device.kind, device.index, uuid, nvml_module, powercap_root)
    return SweepPlan(
        request,
        device,
        built,
        seq_lens,
        stack,
        methodology_for(request, timer_name),
        resume,
        list(command if command is not None else sys.argv),
        probe,
        clock_source,
        sensor,
        sensor_reason or "no power sensor",
    )


def run_sweep(
    request: SweepRequest,
    progress: Progress | None = None,
    *,
    resume: Run | None = None,
    command: Sequence[str] | None = None,
    nvml_module: Any | None = None,
    powercap_root: Path = Path("/sys/class/powercap"),
) -> SweepResult:
    """Plan and execute in one call (library use and tests)."""
    plan = plan_sweep(
        request, resume=resume, command=command, nvml_module=nvml_module, powercap_root=powercap_root
    )
    return execute_sweep(plan, progress)


def idle_power_for(sweep: SweepPlan) -> IdlePower | Unavailable:
    """Idle draw of the device before the sweep (context created, nothing queued), or why it is unknown."""
    if sweep.resume is not None and sweep.resume.idle_power is not None:
        return sweep.resume.idle_power
    if sweep.sensor is None:
        return unavailable(sweep.sensor_reason)
    sweep.device.synchronize()
    return tm.measure_idle(sweep.sensor, sweep.request.idle_seconds)


def point_meter(sweep: SweepPlan, idle: IdlePower | Unavailable) -> tm.PointMeter | None:
    """A meter for one point, with the counter update period found during the idle phase; None: no sensor."""
    if sweep.sensor is None:
        return None
    period = (
        idle.counter_update_ms / 1000.0 if isinstance(idle, IdlePower) and idle.counter_update_ms else None
    )
    return tm.PointMeter(
        sweep.sensor,
        period,
        min_window_s=sweep.request.energy_min_window_s,
        quantization_target=sweep.request.energy_quantization_target,
    )


class QualityProbe:
    """Reference inputs and strict-fp32 outputs per sequence length, computed once, on first use."""

    def __init__(self, sweep: SweepPlan) -> None:
        self.sweep = sweep
        self.refs: dict[int | None, tuple[tuple[torch.Tensor, ...], torch.Tensor] | str] = {}

    def _reference(self, seq: int | None) -> tuple[tuple[torch.Tensor, ...], torch.Tensor] | str:
        error = ""
        for items in qproxy.ITEM_FALLBACKS:  # a model too big for 32 items at once still gets a proxy
            try:
                return qproxy.reference(self.sweep.built, self.sweep.device, seq, items)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:
                self.sweep.device.release_memory()
                error = f"the fp32 reference failed at {items} items ({_first_line(exc)})"
                if not is_oom(exc):
                    break
        return error

    def entry(self, precision: str, seq: int | None, prepared: Prepared) -> QualityProxy:
        if seq not in self.refs:
            self.refs[seq] = self._reference(seq)
        ref = self.refs[seq]
        if isinstance(ref, str):
            return QualityProxy(
                precision=precision, seq_len=seq, status="unsupported", reason=ref, items=qproxy.QUALITY_ITEMS
            )
        inputs, out = ref
        return qproxy.proxy(
            precision, seq, prepared, self.sweep.device, inputs, out, self.sweep.built.classifier
        )


def execute_sweep(
    sweep: SweepPlan,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SweepResult:
    """Measure every point of the plan (skipping those already in the resumed run) and return the run."""
    progress = progress or Progress()
    request, device, built, seq_lens, resume = (
        sweep.request,
        sweep.device,
        sweep.built,
        sweep.seq_lens,
        sweep.resume,
    )
    done: dict[tuple[str, int, int | None], Point] = {p.key[:3]: p for p in (resume.points if resume else [])}
    quality: dict[tuple[str, int | None], QualityProxy] = {
        (q.precision, q.seq_len): q for q in (resume.quality.entries if resume and resume.quality else [])
    }
    # point keys (precision, batch, seq_len) in sweep order: precision, then sequence length, then batch
    plan = [(p, b, s) for p in request.precisions for s in seq_lens for b in request.batch_sizes]
    progress.start(len(plan))
    interrupted = False
    idle: IdlePower | Unavailable = unavailable("not measured: interrupted before the sweep")
    probe_q = QualityProbe(sweep)
    try:
        idle = idle_power_for(sweep)
        for precision in request.precisions:
            reason = unsupported_reason(precision, device, built.module)
            fail_status = "unsupported"
            prepared: Prepared | None = None
            todo = any(key not in done for key in plan if key[0] == precision) or any(
                (precision, s) not in quality for s in seq_lens
            )
            if todo and reason is None:
                try:
                    prepared = compile_prepared(
                        prepare(precision, built.module, device), request.compile_mode
                    )
                except Exception as exc:
                    reason = f"conversion to {precision} failed: {_first_line(exc)}"
                    fail_status = "oom" if is_oom(exc) else "unsupported"
            for seq in seq_lens:
                if (precision, seq) not in quality:
                    quality[(precision, seq)] = (
                        probe_q.entry(precision, seq, prepared)
                        if prepared is not None
                        else QualityProxy(
                            precision=precision,
                            seq_len=seq,
                            status="unsupported",
                            reason=reason or "not prepared",
                            items=qproxy.QUALITY_ITEMS,
                        )
                    )
                oom_at: int | None = None
                for batch in request.batch_sizes:
                    key = (precision, batch, seq)
                    progress.point_started(precision, batch, seq)
                    if key in done:
                        point = done[key]
                    elif reason is not None or prepared is None:
                        point = _not_run(precision, batch, seq, fail_status, reason or "not prepared", [])
                    elif oom_at is not None and batch > oom_at:
                        point = _not_run(
                            precision,
                            batch,
                            seq,
                            "oom",
                            f"not attempted: batch {oom_at} already ran out of memory at {precision}",
                            ["not-attempted"],
                        )
                    else:
                        point = measure_one(
                            built,
                            prepared,
                            device,
                            precision,
                            batch,
                            seq,
                            request,
                            sweep.probe,
                            sweep.clock_source,
                            point_meter(sweep, idle),
                            sweep.sensor_reason,
                        )
                    if point.status == "oom" and oom_at is None:
                        oom_at = batch
                    done[key] = point
                    progress.point_done(point)
            del prepared
            device.release_memory()
    except KeyboardInterrupt:
        interrupted = True
    order = {key: i for i, key in enumerate(plan)}
    points = sorted(done.values(), key=lambda p: order.get(p.key[:3], len(order)))
    qorder = {(p, s): i for i, (p, s) in enumerate((p, s) for p in request.precisions for s in seq_lens)}
    entries = sorted(quality.values(), key=lambda q: qorder.get((q.precision, q.seq_len), len(qorder)))
    run = Run(
        created_at=resume.created_at if resume else now(),
        fleetwise_version=FLEETWISE_VERSION,
        command=sweep.command,
        methodology=sweep.methodology,
        stack=sweep.stack,
        workload=workload_record(built),
        sweep=SweepSpec(
            precisions=request.precisions,
            batch_sizes=request.batch_sizes,
            seq_lens=[s for s in seq_lens if s is not None] or None,
            complete=not interrupted and all(k in done for k in order),
            pacing=request.pacing,
        ),
        points=points,
        idle_power=idle,
        quality=Quality(
            reference=qproxy.REFERENCE,
            inputs=qproxy.INPUTS_DOC,
            entries=entries,
        )
        if entries
        else None,
    ).with_id()
    return SweepResult(run, interrupted)
