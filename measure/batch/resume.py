"""Resuming a run: the sweep request a run file describes, and the workload it names."""

from __future__ import annotations

from measure.core.parsing import Progress as Progress
from measure.core.parsing import SweepError as SweepError
from measure.core.parsing import parse_int_list as parse_int_list
from measure.core.parsing import powers_of_two as powers_of_two
from measure.core.steady_state import SamplingConfig
from measure.inprocess.plan import SweepRequest, compile_mode_of
from measure.run import (
    Run,
)
from measure.workloads.builtin import builtin_names


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
