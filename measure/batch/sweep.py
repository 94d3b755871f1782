"""A measurement sweep: every (precision, sequence length, batch size) point of a workload on a device.

OOM at a batch size skips the larger batches of that precision; an unsupported precision is recorded with
its reason; Ctrl-C returns the points done so far as an incomplete run that `resume` continues.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from measure.core.parsing import Progress as Progress
from measure.core.parsing import SweepError as SweepError
from measure.core.parsing import parse_int_list as parse_int_list
from measure.core.parsing import powers_of_two as powers_of_two
from measure.device import quality as qproxy
from measure.device.precision import Prepared, prepare, unsupported_reason
from measure.device.target import is_oom
from measure.inprocess.plan import (
    FLEETWISE_VERSION,
    SweepPlan,
    SweepRequest,
    SweepResult,
    compile_prepared,
    idle_power_for,
    plan_sweep,
    point_meter,
    workload_record,
)
from measure.inprocess.point import first_line, measure_one, not_run
from measure.run import (
    IdlePower,
    Point,
    Quality,
    QualityProxy,
    Run,
    SweepSpec,
    Unavailable,
    unavailable,
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
                error = f"the fp32 reference failed at {items} items ({first_line(exc)})"
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
                    reason = f"conversion to {precision} failed: {first_line(exc)}"
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
                        point = not_run(precision, batch, seq, fail_status, reason or "not prepared", [])
                    elif oom_at is not None and batch > oom_at:
                        point = not_run(
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
