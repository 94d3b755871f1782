"""LLM step sweeps in-process: prefill, decode and mixed (chunked-prefill) steps of a decoder, per precision.

Each point goes through `measure.batch.sweep.measure_point`, the discipline every batch point gets (warm-up
detection, CI stopping, tail CIs, telemetry and energy, contention). A timed iteration is one forward of the
decoder over a preallocated KV cache whose length is reset before each iteration, so every iteration of a
point measures the same state. OOM at a batch ends that row (the larger batches are not attempted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import torch

from measure.core.parsing import Progress
from measure.core.steady_state import Step
from measure.device import quality as qproxy
from measure.device.precision import Prepared, unsupported_reason
from measure.device.target import is_oom
from measure.inprocess.plan import (
    FLEETWISE_VERSION,
    SweepResult,
    idle_power_for,
    point_meter,
)
from measure.inprocess.point import first_line, measure_point, not_run
from measure.llm.facts import llm_facts, memory_facts
from measure.llm.plan import LlmKey, LlmSweepPlan, grid_rows
from measure.llm.steps import make_llm_step, prepare_llm, step_flops
from measure.run import (
    MemoryFacts,
    Point,
    Quality,
    QualityProxy,
    Run,
    SweepSpec,
    unavailable,
)
from measure.run import Workload as WorkloadRecord


def _quality(
    plan: LlmSweepPlan, precision: str, prepared: Prepared | None, why: str | None, ref: Any
) -> QualityProxy:
    seq = plan.sweep.built.default_seq_len
    if plan.source.quality_skip or prepared is None or isinstance(ref, str):
        reason = plan.source.quality_skip or why or (ref if isinstance(ref, str) else "not prepared")
        return QualityProxy(precision=precision, seq_len=seq, status="unsupported", reason=reason, items=1)
    inputs, out = ref
    return qproxy.proxy(precision, seq, prepared, plan.sweep.device, inputs, out, True)


def _reference(plan: LlmSweepPlan) -> tuple[tuple[torch.Tensor, ...], torch.Tensor] | str:
    """fp32 outputs of the same weights on fixed prompts (fewer items when memory is short)."""
    built, device = plan.sweep.built, plan.sweep.device
    error = "not computed"
    for items in qproxy.ITEM_FALLBACKS:
        try:
            ref = prepare_llm("fp32", plan.source, device)
            inputs = built.inputs(items, built.default_seq_len)
            try:
                return inputs, qproxy.forward(ref, inputs, device, "fp32")
            finally:
                del ref
                device.release_memory()
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            device.release_memory()
            error = f"the fp32 reference failed at {items} items ({first_line(exc)})"
            if not is_oom(exc):
                break
    return error


def execute_llm_sweep(
    plan: LlmSweepPlan,
    progress: Progress | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SweepResult:
    """Measure every point of the grid at every precision; Ctrl-C returns what was measured (incomplete)."""
    progress = progress or Progress()
    sweep, device = plan.sweep, plan.sweep.device
    request = sweep.request
    rows = grid_rows(plan.grid)
    total = len(request.precisions) * sum(len(r) for r in rows)
    progress.start(total)
    points: list[Point] = []
    quality: list[QualityProxy] = []
    memory: list[MemoryFacts] = []
    interrupted = False
    idle: Any = unavailable("not measured: interrupted before the sweep")
    try:
        idle = idle_power_for(sweep)
        ref = _reference(plan) if plan.source.quality_skip is None else "skipped"
        for precision in request.precisions:
            reason = unsupported_reason(precision, device, sweep.built.module)
            status = "unsupported"
            prepared: Prepared | None = None
            if reason is None:
                try:
                    prepared = prepare_llm(precision, plan.source, device)
                except (KeyboardInterrupt, SystemExit):
                    raise
                except Exception as exc:
                    device.release_memory()
                    reason = f"building the model at {precision} failed: {first_line(exc)}"
                    status = "oom" if is_oom(exc) else "unsupported"
            quality.append(_quality(plan, precision, prepared, reason, ref))
            for row in rows:
                oom_at: int | None = None
                for key in row:
                    progress.point_started(precision, key.batch, key.seq or key.context)
                    if prepared is None:
                        point = not_run(
                            precision, key.batch, key.seq, status, reason or "not prepared", [], key.fields()
                        )
                    elif oom_at is not None:
                        why = f"not attempted: batch {oom_at} already ran out of memory at {precision}"
                        point = not_run(
                            precision, key.batch, key.seq, "oom", why, ["not-attempted"], key.fields()
                        )
                    else:
                        point = _measure(plan, prepared, precision, key, idle)
                        if point.status == "oom":
                            oom_at = key.batch
                    points.append(point)
                    progress.point_done(point)
            if prepared is not None:
                memory.append(memory_facts(plan, precision, prepared, points))
            del prepared
            device.release_memory()
    except KeyboardInterrupt:
        interrupted = True
    facts = llm_facts(plan, memory, points)
    entries = [q for q in quality if q is not None]
    batches = sorted({k.batch for row in rows for k in row})
    run = Run(
        created_at=now(),
        fleetwise_version=FLEETWISE_VERSION,
        command=sweep.command,
        methodology=sweep.methodology,
        stack=sweep.stack,
        workload=WorkloadRecord(
            name=sweep.built.name,
            source=sweep.built.source,
            description=sweep.built.description,
            parameters=sweep.built.parameters,
            unit="tokens",
            microbenchmark=False,
            has_seq_len=True,
        ),
        sweep=SweepSpec(
            precisions=request.precisions,
            batch_sizes=batches,
            seq_lens=list(plan.grid.prompt_tokens) or None,
            complete=not interrupted and len(points) == total,
            llm=plan.grid,
        ),
        points=points,
        idle_power=idle,
        quality=Quality(
            reference="fp32 with tf32 disabled, same device, same weights",
            inputs=f"up to {qproxy.QUALITY_ITEMS} prompts of {sweep.built.default_seq_len} random token ids; "
            "next-token logits of the last position",
            entries=entries,
        )
        if entries
        else None,
        llm=facts,
    ).with_id()
    return SweepResult(run, interrupted)


def _measure(plan: LlmSweepPlan, prepared: Prepared, precision: str, key: LlmKey, idle: Any) -> Point:
    sweep, device = plan.sweep, plan.sweep.device
    flops: list[float | None] = []

    def make() -> Step:
        step = make_llm_step(
            prepared.module, key.phase, key.batch, key.seq, key.context, key.chunk, device.torch_device
        )
        if precision != "int8":  # quantized kernels are invisible to the counter: no number beats a wrong one
            flops.append(step_flops(step))
        return step

    per_item = key.tokens / key.batch
    built = replace(sweep.built, units_per_item_fn=lambda s: per_item, _flops={key.seq: None})
    point = measure_point(
        make,
        built,
        prepared,
        device,
        precision,
        key.batch,
        key.seq,
        sweep.request,
        sweep.probe,
        sweep.clock_source,
        point_meter(sweep, idle),
        sweep.sensor_reason,
        key.fields(),
    )
    f = flops[0] if flops else None
    if f is None or point.latency_ms is None:
        return point
    return point.model_copy(
        update={"flops_per_item": f / key.batch, "achieved_tflops": f * 1000.0 / point.latency_ms.mean / 1e12}
    )
