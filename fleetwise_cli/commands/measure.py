"""`fleetwise measure`: a batch sweep in-process, an LLM sweep in-process, or an engine over HTTP."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from fleetwise_cli.commands.measure_llm import LlmOptions, measure_engine, measure_llm
from fleetwise_cli.common import err, out
from fleetwise_cli.errors import EXIT_INTERRUPTED, fail, save_or_fallback, sigterm_as_interrupt
from fleetwise_cli.render.run import print_pacing, soak_table, summary_table
from measure.run import (
    Run,
    RunFileError,
    check_output_dir,
    load_run,
)

DEFAULT_MAX_BATCH = 256  # the default batch list is 1, 2, 4, ... up to this (earlier at an OOM)


def measure_cmd(
    workload: str = typer.Option(
        None,
        "--workload",
        "-w",
        help="mlp | transformer-encoder | cnn | gemm | llm | hf-config:CONFIG.json | hf:FOLDER | pkg.mod:factory "
        "(with --resume: confirms a user factory)",
    ),
    device: str = typer.Option("cpu", help="cpu, cuda or cuda:N"),
    precision: str = typer.Option("fp32", help="comma list of fp32,tf32,bf16,fp16,fp8,int8"),
    batch: str = typer.Option(
        None, help="comma list of batch sizes (default: powers of two up to --max-batch)"
    ),
    max_batch: int = typer.Option(DEFAULT_MAX_BATCH, help="cap of the default batch list"),
    seq_len: str = typer.Option(None, "--seq-len", help="comma list of sequence lengths (token workloads)"),
    param: list[str] = typer.Option([], "--param", "-p", help="workload parameter key=value (repeatable)"),
    ci_target: float = typer.Option(
        None,
        help="target 95% CI half-width of mean latency, relative (default 0.02; engines 0.05 on per-request TPOT)",
    ),
    min_seconds_per_point: float = typer.Option(1.0, help="sample each point at least this long"),
    max_seconds_per_point: float = typer.Option(
        10.0, help="stop a point here; unconverged points are 'unstable'"
    ),
    min_iterations: int = typer.Option(30, help="steady-state iterations required before stopping"),
    scope: str = typer.Option("end-to-end", help="end-to-end (host copies + overhead) or device-compute"),
    l2_flush: bool = typer.Option(
        False, "--l2-flush", help="flush the GPU L2 cache before every timed iteration"
    ),
    compile_mode: str = typer.Option(
        "none", "--compile", help="none | default | reduce-overhead | max-autotune"
    ),
    threads: int = typer.Option(None, help="torch intra-op threads (default: torch's choice)"),
    idle_seconds: float = typer.Option(3.0, help="idle-power window before the sweep (0 skips it)"),
    energy_window: float = typer.Option(
        2.0, help="minimum energy window per point, seconds (longer when the counter is coarse)"
    ),
    energy_error: float = typer.Option(
        0.02, help="bound on the energy counter's step error per point (window >= update period / this)"
    ),
    pacing: str = typer.Option(
        None,
        help="also measure each point after idle gaps: gaps=0,1ms,5ms,30ms or load=0.3,0.5,0.7,0.85 "
        "(the mean idle period at each load)",
    ),
    soak: str = typer.Option(None, help="run ONE point for this long (e.g. 30m, 90s, 1h) in soak mode"),
    soak_window: str = typer.Option("10s", help="soak window length"),
    out_dir: Path = typer.Option(Path("data/runs"), "--out", help="folder for the run file"),
    resume: Path = typer.Option(None, help="continue an interrupted run file (its settings are reused)"),
    prefill_batch: str = typer.Option(
        None, help="LLM: prefill batch sizes (default 1,4)", rich_help_panel="LLM"
    ),
    prompt_tokens: str = typer.Option(
        None,
        help="LLM: prompt lengths of prefill points / engine requests (default 32,128,512 / 64,256)",
        rich_help_panel="LLM",
    ),
    decode_batch: str = typer.Option(
        None, help="LLM: decode batch sizes (default 1,4,16)", rich_help_panel="LLM"
    ),
    context: str = typer.Option(
        None, help="LLM: cached tokens per decoding sequence (default 128,512,2048)", rich_help_panel="LLM"
    ),
    mixed_batch: str = typer.Option(
        None, help="LLM: decode batch of mixed steps (default 4)", rich_help_panel="LLM"
    ),
    mixed_context: int = typer.Option(
        None, help="LLM: context of the mixed steps' decode batch (default 512)", rich_help_panel="LLM"
    ),
    chunk: str = typer.Option(
        None, help="LLM: prefill chunk sizes of mixed steps (default 64,256)", rich_help_panel="LLM"
    ),
    memory_fraction: float = typer.Option(
        0.9,
        help="LLM: share of device memory for weights + KV cache (as vLLM's gpu_memory_utilization)",
        rich_help_panel="LLM",
    ),
    endpoint: str = typer.Option(
        None,
        help="measure a running OpenAI-compatible streaming server at this base URL",
        rich_help_panel="LLM engine",
    ),
    model: str = typer.Option(
        None, help="the model name the server serves (with --endpoint)", rich_help_panel="LLM engine"
    ),
    concurrency: str = typer.Option(
        None, help="closed-loop concurrencies (default 1,2,4,8)", rich_help_panel="LLM engine"
    ),
    scenario: Path = typer.Option(
        None,
        "--scenario",
        help="choose the prompt lengths from this generative scenario's traffic (its p10/p50/p90 prompt and its "
        "longest prompt + output) instead of --prompt-tokens",
        rich_help_panel="LLM engine",
    ),
    output_tokens: int = typer.Option(
        32, help="max_tokens of every engine request", rich_help_panel="LLM engine"
    ),
    requests: int = typer.Option(
        48,
        help="most requests measured per engine setting (its steady window; the warm-up and the drain come on top)",
        rich_help_panel="LLM engine",
    ),
    request_timeout: float = typer.Option(
        60.0, help="per-request time-out, seconds", rich_help_panel="LLM engine"
    ),
    engine_param: list[str] = typer.Option(
        [],
        help="what the engine is: engine=vllm, version=..., max_num_seqs=..., device_kind=cuda, device_name=...",
        rich_help_panel="LLM engine",
    ),
    cached_prefix: str = typer.Option(
        None,
        help="also time prefill behind cached prefixes of these token counts (an engine with prefix caching on; "
        "whole KV blocks, e.g. multiples of 128 on vLLM's CPU backend), one request at a time, with no prefix "
        "beside them",
        rich_help_panel="LLM engine",
    ),
    cached_suffix: int = typer.Option(
        None, help="the tokens each of those prefills computes (default 64)", rich_help_panel="LLM engine"
    ),
    engine_pid: int = typer.Option(
        None,
        help="also time the engine's start-up: the process id of an engine on this machine that is starting "
        "now (run measure as you start it); from its start to its first answer and first token",
        rich_help_panel="LLM engine",
    ),
    startup_timeout: float = typer.Option(
        900.0, help="how long to wait for that engine to answer, seconds", rich_help_panel="LLM engine"
    ),
) -> None:
    """Measure steady-state latency/throughput curves across precision and batch size; write a run file.

    LLMs: `-w llm -p preset=tiny|1b|8b`, `-w hf-config:config.json` or `-w hf:FOLDER` measure prefill, decode and
    mixed steps in-process; `--endpoint URL --model NAME` measures a running streaming server."""

    if scenario is not None:
        if endpoint is None or prompt_tokens is not None:
            raise fail(
                "--scenario chooses an engine sweep's prompt lengths: give it with --endpoint, without --prompt-tokens"
            )
        from planner.llm.grid import prompts_for
        from planner.traffic.scenario import ScenarioError, load_scenario

        try:
            prompt_tokens = ",".join(str(p) for p in prompts_for(load_scenario(scenario), output_tokens))
        except (ScenarioError, ValueError) as exc:
            raise fail(f"--scenario: {exc}") from None
    llm_opts = LlmOptions(
        prefill_batch,
        prompt_tokens,
        decode_batch,
        context,
        mixed_batch,
        mixed_context,
        chunk,
        memory_fraction,
        endpoint,
        model,
        concurrency,
        output_tokens,
        requests,
        request_timeout,
        tuple(engine_param),
        cached_prefix,
        cached_suffix,
        engine_pid,
        startup_timeout,
    )
    if endpoint is None and engine_pid is not None:
        raise fail("--engine-pid times a serving engine's start-up: give --endpoint")
    if endpoint is None and (cached_prefix is not None or cached_suffix is not None):
        raise fail(
            "--cached-prefix and --cached-suffix time a serving engine's prefix cache: give --endpoint"
        )
    if cached_suffix is not None and cached_prefix is None:
        raise fail("--cached-suffix sizes the prefills behind --cached-prefix: give that too")
    if endpoint is not None:
        if workload or resume or soak or pacing:
            raise fail("--endpoint measures a server: drop --workload, --resume, --soak and --pacing")
        measure_engine(
            llm_opts,
            precision,
            device,
            0.05 if ci_target is None else ci_target,
            max_seconds_per_point,
            out_dir,
        )
        return
    ci_target = 0.02 if ci_target is None else ci_target
    if workload is not None and (workload == "llm" or workload.startswith(("hf-config:", "hf:"))):
        if resume or soak:
            raise fail("--resume and --soak are for batch workloads; measure the LLM grid again")
        measure_llm(
            _llm_request(
                workload,
                param,
                device,
                precision,
                ci_target,
                min_iterations,
                min_seconds_per_point,
                max_seconds_per_point,
                threads,
                idle_seconds,
                energy_window,
                energy_error,
                pacing,
                compile_mode,
            ),
            llm_opts,
            out_dir,
        )
        return
    try:
        from measure.batch.resume import request_from_run
        from measure.batch.sweep import execute_sweep
        from measure.core.parsing import (
            PrecisionError,
            SweepError,
            WorkloadError,
            parse_int_list,
            parse_param,
            parse_precisions,
            powers_of_two,
        )
        from measure.core.steady_state import SamplingConfig
        from measure.device.target import DeviceError
        from measure.inprocess.plan import SweepRequest, plan_sweep
    except ImportError as exc:
        raise fail(f"measuring needs torch: install the 'measure' extra ({exc})") from None

    bad_input = (WorkloadError, SweepError, DeviceError, PrecisionError, RunFileError, ValueError)
    try:
        old: Run | None = None
        if resume is not None:
            old = load_run(resume)
            if old.sweep.complete:
                raise SweepError(f"{resume} is a complete run; nothing to resume")
            request = request_from_run(old, workload)
        else:
            if not workload:
                raise SweepError("--workload is required")
            request = SweepRequest(
                workload=workload,
                params=dict(parse_param(p) for p in param),
                device=device,
                precisions=parse_precisions(precision),
                batch_sizes=parse_int_list(batch, "batch") if batch else powers_of_two(max_batch),
                seq_lens=parse_int_list(seq_len, "seq-len") if seq_len else None,
                sampling=SamplingConfig(
                    ci_target=ci_target,
                    min_iterations=min_iterations,
                    min_seconds=min_seconds_per_point,
                    max_seconds=max_seconds_per_point,
                ),
                scope=scope,
                l2_flush=l2_flush,
                compile_mode=compile_mode,
                threads=threads,
                idle_seconds=idle_seconds,
                energy_min_window_s=energy_window,
                energy_quantization_target=energy_error,
                pacing=pacing,
            )
        from fleetwise_cli.render.progress import RichProgress, SoakProgress
        from measure.batch.soak import check_soak, parse_duration, run_soak

        soak_s = parse_duration(soak) if soak is not None else None
        window_s = parse_duration(soak_window)
        if soak_s is not None and resume is not None:
            raise SweepError("--soak cannot resume a run")
        plan = plan_sweep(request, resume=old, command=["fleetwise", *sys.argv[1:]])
        if soak_s is not None:
            check_soak(plan, soak_s, window_s)
        check_output_dir(out_dir)  # the input is good: prove the output can be written before measuring
        with sigterm_as_interrupt():  # kill or a service stop saves the points like Ctrl-C
            if soak_s is not None:
                with SoakProgress(err, soak_s) as ticker:
                    try:
                        result = run_soak(plan, soak_s, window_s, ticker.tick)
                    except KeyboardInterrupt:
                        err.print("interrupted before the soak's first chunk; nothing written")
                        raise typer.Exit(EXIT_INTERRUPTED) from None
            else:
                with RichProgress(err) as progress:
                    result = execute_sweep(plan, progress)
    except bad_input as exc:
        raise fail(str(exc)) from None

    from measure.run import save_run

    run = result.run
    if result.interrupted and not run.points:
        err.print("interrupted before any point finished; nothing written")
        raise typer.Exit(EXIT_INTERRUPTED)
    out.print(summary_table(run))
    print_pacing(run)
    if run.soak is not None:
        out.print(soak_table(run))
    path = save_or_fallback(lambda d: save_run(run, d), out_dir, "run")
    if old is not None and resume is not None and resume.resolve() != path.resolve():
        resume.unlink(missing_ok=True)  # superseded: every point of it is in the new file
    if result.interrupted:
        planned = len(request.precisions) * len(request.batch_sizes) * len(plan.seq_lens)
        err.print(
            f"interrupted after {len(run.points)} of {planned} points; saved. "
            f"Continue with: fleetwise measure --resume {escape(str(path))}",
            highlight=False,
            soft_wrap=True,
        )
        out.print(escape(str(path)), soft_wrap=True, highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED)
    out.print(escape(str(path)), soft_wrap=True, highlight=False)


def _llm_request(
    workload: str,
    param: list[str],
    device: str,
    precision: str,
    ci_target: float,
    min_iterations: int,
    min_s: float,
    max_s: float,
    threads: int | None,
    idle_seconds: float,
    energy_window: float,
    energy_error: float,
    pacing: str | None,
    compile_mode: str,
) -> dict[str, object]:
    """The SweepRequest fields of an in-process LLM sweep (parsed inside measure_llm, whose errors exit 2)."""
    try:
        from measure.core.parsing import PrecisionError, WorkloadError, parse_param, parse_precisions
        from measure.core.steady_state import SamplingConfig

        return {
            "workload": workload,
            "params": dict(parse_param(p) for p in param),
            "device": device,
            "precisions": parse_precisions(precision),
            "batch_sizes": [1],
            "sampling": SamplingConfig(
                ci_target=ci_target, min_iterations=min_iterations, min_seconds=min_s, max_seconds=max_s
            ),
            "compile_mode": compile_mode,
            "threads": threads,
            "idle_seconds": idle_seconds,
            "energy_min_window_s": energy_window,
            "energy_quantization_target": energy_error,
            "pacing": pacing,
        }
    except ImportError as exc:
        raise fail(f"measuring needs torch: install the 'measure' extra ({exc})") from None
    except (PrecisionError, WorkloadError, ValueError) as exc:
        raise fail(str(exc)) from None
