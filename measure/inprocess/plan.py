"""A validated sweep plan: the request, the device and stack captured, the methodology, resume checks.

Every input error is raised here, before anything is measured; batch and LLM sweeps share it.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from measure.core import stats
from measure.core.pacing import parse_pacing
from measure.core.parsing import ParamValue
from measure.core.parsing import Progress as Progress
from measure.core.parsing import SweepError as SweepError
from measure.core.parsing import parse_int_list as parse_int_list
from measure.core.parsing import powers_of_two as powers_of_two
from measure.core.steady_state import ClockProbe, SamplingConfig
from measure.device.precision import Prepared
from measure.device.target import Device, parse_device
from measure.run import (
    RAW_LATENCY_CAP,
    WARMUP_LATENCY_CAP,
    IdlePower,
    Methodology,
    Run,
    Stack,
    StoppingRule,
    Unavailable,
    WarmupPolicy,
    unavailable,
)
from measure.run import Workload as WorkloadRecord
from measure.sensors import power as pw
from measure.sensors import telemetry as tm
from measure.sensors.clocks import probe_for
from measure.sensors.nvml import SLOWDOWN_REASONS
from measure.sensors.stack import capture_stack
from measure.workloads.builtin import BuiltWorkload, build

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
    sensor: pw.Sensor | None = None
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
    sensor, sensor_reason = pw.sensor_for(device.kind, device.index, uuid, nvml_module, powercap_root)
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
