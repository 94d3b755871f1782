"""`fleetwise measure` for LLMs (in-process steps, or a running engine through --endpoint) and the LLM tables
`show` and `measure` print."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.markup import escape

from fleetwise_cli.common import err, out
from fleetwise_cli.errors import EXIT_INTERRUPTED, fail, save_or_fallback, sigterm_as_interrupt
from fleetwise_cli.options import _ints, parse_engine_params
from fleetwise_cli.render.progress import RichProgress
from fleetwise_cli.render.run import print_llm
from measure.run import (
    LlmGrid,
    Run,
    RunFileError,
    Stack,
    check_output_dir,
    save_run,
)


@dataclass(frozen=True)
class LlmOptions:
    """The LLM options of `fleetwise measure`, as typed (comma lists unparsed)."""

    prefill_batch: str | None = None
    prompt_tokens: str | None = None
    decode_batch: str | None = None
    context: str | None = None
    mixed_batch: str | None = None
    mixed_context: int | None = None
    chunk: str | None = None
    memory_fraction: float = 0.9
    endpoint: str | None = None
    model: str | None = None
    concurrency: str | None = None
    output_tokens: int = 32
    requests: int = 48
    request_timeout: float = 60.0
    engine_param: tuple[str, ...] = ()
    cached_prefix: str | None = None
    cached_suffix: int | None = None
    engine_pid: int | None = None
    startup_timeout: float = 900.0


def grid_from(opts: LlmOptions) -> LlmGrid:
    """The in-process grid: defaults where an option is not given; `--chunk 0` or `--context 0` is refused."""
    from measure.llm.plan import DEFAULT_GRID as d

    return LlmGrid(
        mode="in-process",
        prefill_batches=_ints(opts.prefill_batch, "prefill batch", d.prefill_batches),
        prompt_tokens=_ints(opts.prompt_tokens, "prompt tokens", d.prompt_tokens),
        decode_batches=_ints(opts.decode_batch, "decode batch", d.decode_batches),
        contexts=_ints(opts.context, "context", d.contexts),
        mixed_batches=_ints(opts.mixed_batch, "mixed batch", d.mixed_batches),
        mixed_context=opts.mixed_context or d.mixed_context,
        chunks=_ints(opts.chunk, "chunk", d.chunks),
    )


def _save(run: Run, out_dir: Path, interrupted: bool) -> None:
    if interrupted and not run.points:
        err.print("interrupted before any point finished; nothing written")
        raise typer.Exit(EXIT_INTERRUPTED)
    print_llm(run)
    path = save_or_fallback(lambda d: save_run(run, d), out_dir, "run")
    if interrupted:
        err.print(f"interrupted after {len(run.points)} points; saved an incomplete run", highlight=False)
        out.print(escape(str(path)), soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    out.print(escape(str(path)), soft_wrap=True, highlight=False)


def _guarded(work: Callable[[], tuple[Run, bool]], bad: tuple[type[Exception], ...]) -> tuple[Run, bool]:
    try:
        with sigterm_as_interrupt():  # kill or a service stop saves the points like Ctrl-C
            return work()
    except bad as exc:
        raise fail(str(exc)) from None


def measure_llm(request_kwargs: dict[str, object], opts: LlmOptions, out_dir: Path) -> None:
    """`-w llm | hf-config:PATH | hf:FOLDER`: prefill, decode and mixed steps in-process."""
    from measure.core.parsing import PrecisionError, SweepError
    from measure.device.target import DeviceError
    from measure.inprocess.plan import SweepRequest
    from measure.llm.plan import plan_llm_sweep
    from measure.llm.sweep import execute_llm_sweep

    bad = (SweepError, DeviceError, PrecisionError, RunFileError, ValueError)
    try:
        request = SweepRequest(**request_kwargs)  # type: ignore[arg-type]
        plan = plan_llm_sweep(
            request, grid_from(opts), opts.memory_fraction, command=["fleetwise", *sys.argv[1:]]
        )
        check_output_dir(out_dir)
    except bad as exc:
        raise fail(str(exc)) from None

    def work() -> tuple[Run, bool]:
        with RichProgress(err) as progress:
            result = execute_llm_sweep(plan, progress)
        return result.run, result.interrupted

    run, interrupted = _guarded(work, bad)
    _save(run, out_dir, interrupted)


def measure_engine(
    opts: LlmOptions, precision: str, device: str, ci_target: float, max_seconds: float, out_dir: Path
) -> None:
    """`--endpoint URL --model NAME`: a closed-loop sweep against a running streaming server."""
    from measure.core.parsing import PrecisionError, SweepError, WorkloadError, parse_precisions
    from measure.engine_client.closed_loop import execute_engine
    from measure.engine_client.http import Endpoint, EndpointError
    from measure.engine_client.session import (
        DEFAULT_CONCURRENCIES,
        DEFAULT_PROMPTS,
        EngineRequest,
        check_request,
        plan_engine,
        remote_stack,
    )
    from measure.engine_client.startup import time_startup

    # torch-free: measuring an engine is an HTTP client, and must work on a machine without torch
    bad = (EndpointError, SweepError, PrecisionError, WorkloadError, RunFileError, ValueError)
    try:
        if not opts.model:
            raise EndpointError("--model is required with --endpoint (the name the server serves)")
        precisions = parse_precisions(precision)
        if len(precisions) != 1:
            raise EndpointError(
                "an engine serves one precision: give exactly one --precision (what the engine runs)"
            )
        params = parse_engine_params(opts.engine_param)
        req = EngineRequest(
            url=opts.endpoint or "",
            model=opts.model,
            precision=precisions[0],
            prompt_tokens=tuple(_ints(opts.prompt_tokens, "prompt tokens", list(DEFAULT_PROMPTS))),
            concurrencies=tuple(_ints(opts.concurrency, "concurrency", list(DEFAULT_CONCURRENCIES))),
            output_tokens=opts.output_tokens,
            max_requests=opts.requests,
            min_requests=min(8, opts.requests),
            max_seconds=max_seconds,
            timeout_s=opts.request_timeout,
            ci_target=ci_target,
            params=params,
            cached_prefixes=tuple(_ints(opts.cached_prefix, "cached prefix tokens", []))
            if opts.cached_prefix
            else (),
            cached_suffix=64 if opts.cached_suffix is None else opts.cached_suffix,
        )
        check_output_dir(out_dir)
        startup = None
        if opts.engine_pid is not None:  # before anything else reaches the engine: it is coming up now
            err.print(f"waiting for engine process {opts.engine_pid} to answer (start-up timing)")
            startup = time_startup(check_request(req), req.model, opts.engine_pid, opts.startup_timeout)

        def stack(ep: Endpoint) -> Stack:
            if not ep.loopback:
                return remote_stack(params)
            try:  # the engine runs here: record this machine's stack, when torch is here to read it
                from measure.device.target import parse_device
                from measure.sensors.stack import capture_stack
            except ImportError:
                return remote_stack(params)
            return capture_stack(parse_device(device), "engine (served on this machine)")

        plan = plan_engine(req, stack, ["fleetwise", *sys.argv[1:]])
        if startup is not None:
            plan.info = plan.info.model_copy(update={"startup": startup})
    except bad as exc:
        raise fail(str(exc)) from None

    def work() -> tuple[Run, bool]:
        with RichProgress(err) as progress:
            return execute_engine(plan, progress)

    run, interrupted = _guarded(work, bad)
    _save(run, out_dir, interrupted)


# ------------------------------------------------------------------------------------------------ tables
