"""`fleetwise validate`: serve a run's workload live under a scenario's arrivals and check the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from fleetwise_cli.common import err, out, write_json
from fleetwise_cli.errors import fail
from fleetwise_cli.render.validation import print_validation
from measure.run import Run, RunFileError, check_output_dir
from planner.evidence.batch_live import (
    Served,
    canary_vs_run,
    check_levels,
    level_traffic,
    plan_validation,
    predict_level,
    validation,
)
from planner.evidence.validation import (
    BatchCanary,
    save_validation,
)
from planner.serving.service import ServiceError
from planner.traffic.scenario import ScenarioError, load_scenario
from planner.workers import load_run_cached

if TYPE_CHECKING:
    from measure.batch.live import CanaryReading


DEFAULT_CURVE_CALLS = 30
MIN_CURVE_CALLS = 5
MAX_CURVE_CALLS = 1000


def _reading(c: CanaryReading, before: float | None) -> BatchCanary:
    return BatchCanary(
        before_load=before, mean_ms=c.mean_ms, ci_half_ms=c.ci_half_ms, median_ms=c.median_ms, calls=c.calls
    )


def _canary_notes(canaries: list[BatchCanary], ratio: float | None, run: Run) -> list[str]:
    means = ", ".join(f"{c.mean_ms:.3g}" for c in canaries)
    line = f"canary (batch 1 back to back, {canaries[0].calls} calls) before each level and after the last: {means} ms"
    if ratio is None:
        return [line + "; the run has no batch-1 point to compare it with"]
    return [
        line + f"; the first is {ratio:.2f}x the run's own batch-1 mean (measured "
        f"{run.created_at:%Y-%m-%d %H:%M} UTC)"
    ]


def _is_llm_run(path: Path) -> bool:
    try:
        return load_run_cached(str(path)).is_llm  # read once: the path taken reads it from the cache
    except (RunFileError, ValueError) as exc:
        raise fail(str(exc)) from None


def validate(
    run: Path = typer.Option(..., "--run", help="the measured run whose prediction is checked"),
    precision: str = typer.Option(None, help="precision of the run (needed when it has several)"),
    scenario: Path = typer.Option(
        None, "--scenario", help="scenario whose arrival shape and sizes are used (not with --benchmark)"
    ),
    load: str = typer.Option("0.3,0.5,0.7,0.85", help="load levels as fractions of the sustainable rate"),
    max_batch: int = typer.Option(None, help="batch runs: largest batch, in items (default 1)"),
    max_delay_ms: float = typer.Option(
        None, help="batch runs: how long the oldest request may wait for a fuller batch (default 0)"
    ),
    curve_calls: int = typer.Option(
        None,
        help=f"batch runs: calls per batch size of the curve measured around each level (half before, half after), which the level is "
        f"judged on (default {DEFAULT_CURVE_CALLS}; 0: judge every level from the run's curves)",
    ),
    seconds: float = typer.Option(20.0, help="live seconds per level (at least 200 requests are sent)"),
    out_dir: Path = typer.Option(Path("data/validations"), "--out", help="folder for the validation file"),
    as_json: bool = typer.Option(False, "--json", help="the validation as JSON on stdout"),
    workload: str = typer.Option(
        None, "--workload", "-w", help="confirm the run's user workload (pkg.mod:factory): its code will run"
    ),
    endpoint: str = typer.Option(None, help="LLM runs: the live engine's base URL", rich_help_panel="LLM"),
    served_model: str = typer.Option(
        None, "--model", help="LLM runs: the served model's name", rich_help_panel="LLM"
    ),
    max_num_seqs: int = typer.Option(256, help="LLM runs: the engine's max_num_seqs", rich_help_panel="LLM"),
    max_num_batched_tokens: int = typer.Option(
        2048, help="LLM runs: the engine's token budget per step", rich_help_panel="LLM"
    ),
    chunked_prefill: bool = typer.Option(
        True, help="LLM runs: the engine chunks prefills", rich_help_panel="LLM"
    ),
    block_size: int = typer.Option(16, help="LLM runs: KV block size in tokens", rich_help_panel="LLM"),
    kv_blocks: int = typer.Option(
        None, help="LLM runs: KV blocks (default: from the run)", rich_help_panel="LLM"
    ),
    knobs_source: str = typer.Option(
        "as given on the command line", help="LLM runs: how the knobs are known", rich_help_panel="LLM"
    ),
    saturation_concurrency: int = typer.Option(
        32,
        help="LLM runs: streams of the closed-loop probe that measures the sustainable rate",
        rich_help_panel="LLM",
    ),
    saturation_seconds: float = typer.Option(
        30.0, help="LLM runs: seconds of that probe", rich_help_panel="LLM"
    ),
    max_in_flight: int = typer.Option(256, help="LLM runs: sender threads", rich_help_panel="LLM"),
    prefix_caching: bool = typer.Option(
        None,
        "--prefix-caching/--no-prefix-caching",
        help="LLM runs: the engine runs with automatic prefix caching, and so does the model; a Mooncake "
        "scenario's prompts are sent as token ids sharing the blocks its trace names (default off)",
        rich_help_panel="LLM",
    ),
    engine_param: list[str] = typer.Option(
        [], "--engine-param", help="LLM runs: key=value recorded with the engine", rich_help_panel="LLM"
    ),
    recheck: Path = typer.Option(
        None,
        help="LLM runs: re-predict the live traffic recorded in this LLM validation file with the current model "
        "(nothing is sent; the new file goes to --out)",
        rich_help_panel="LLM",
    ),
    calibrated: bool = typer.Option(
        False,
        "--calibrated",
        help="LLM runs, with --recheck: the run's decode steps fitted by replaying its closed loops through the "
        "engine model (instead of read off its gaps)",
        rich_help_panel="LLM",
    ),
    benchmark: Path = typer.Option(
        None,
        help="LLM runs: an engine benchmark (vllm bench serve, GuideLLM, AIPerf result or an imported one) to "
        "predict from the run's curves, instead of live traffic",
        rich_help_panel="LLM",
    ),
) -> None:
    """Predicted vs live-measured p50/p90/p99 latency and throughput per load level, with the error in %.

    An LLM run is checked against a live engine (--endpoint, --model): TTFT, TPOT and E2E per load level."""
    if calibrated and recheck is None:  # never dropped silently
        raise fail("--calibrated re-predicts a recorded LLM validation: give --recheck FILE with it")
    batch_only = {"--max-batch": max_batch, "--max-delay-ms": max_delay_ms, "--curve-calls": curve_calls}
    wrong = [k for k, v in batch_only.items() if v is not None]
    if wrong and (recheck is not None or benchmark is not None or _is_llm_run(run)):  # refused, never dropped
        raise fail(f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to an LLM run: {run}")
    if prefix_caching is not None and (recheck is not None or benchmark is not None):
        raise fail(
            "--prefix-caching applies to live traffic: a recheck keeps its file's setting, a benchmark has none"
        )
    if recheck is not None:
        from fleetwise_cli.commands.validate_llm import recheck_llm

        recheck_llm(recheck, run, out_dir, as_json, calibrated)
        return
    if benchmark is not None:
        from fleetwise_cli.commands.import_benchmark import validate_benchmark

        validate_benchmark(
            benchmark, run, precision, max_num_seqs, max_num_batched_tokens, chunked_prefill, block_size,
            kv_blocks, as_json,
        )  # fmt: skip
        return
    if scenario is None:
        raise fail("give --scenario (the traffic to replay live), or --benchmark FILE for an LLM run")
    if _is_llm_run(run):
        from fleetwise_cli.commands.validate_llm import LlmValidateArgs, validate_llm
        from fleetwise_cli.options import parse_engine_params

        try:
            levels = [float(x) for x in load.split(",") if x.strip()]
            if not levels or any(not 0 < x < 1 for x in levels):
                raise ValueError(f"--load must be fractions in (0, 1), got {load!r}")
            params = parse_engine_params(tuple(engine_param))
        except ValueError as exc:
            raise fail(str(exc)) from None
        validate_llm(
            LlmValidateArgs(
                run=run,
                precision=precision,
                scenario=scenario,
                loads=levels,
                seconds=seconds,
                out_dir=out_dir,
                as_json=as_json,
                endpoint=endpoint,
                model=served_model,
                max_num_seqs=max_num_seqs,
                max_num_batched_tokens=max_num_batched_tokens,
                chunked_prefill=chunked_prefill,
                block_size=block_size,
                kv_blocks=kv_blocks,
                knobs_source=knobs_source,
                saturation_concurrency=saturation_concurrency,
                saturation_seconds=saturation_seconds,
                max_in_flight=max_in_flight,
                timeout_s=60.0,
                engine_params=params,
                prefix_caching=bool(prefix_caching),
            )
        )
        return
    if endpoint is not None or served_model is not None or prefix_caching is not None:
        raise fail(
            f"--endpoint, --model and --prefix-caching apply to an LLM run; {run} is a batch run, served in "
            "this process"
        )
    max_batch = 1 if max_batch is None else max_batch
    max_delay_ms = 0.0 if max_delay_ms is None else max_delay_ms
    curve_calls = DEFAULT_CURVE_CALLS if curve_calls is None else curve_calls
    try:
        if curve_calls != 0 and not MIN_CURVE_CALLS <= curve_calls <= MAX_CURVE_CALLS:
            raise ValueError(
                f"--curve-calls must be 0 or {MIN_CURVE_CALLS}..{MAX_CURVE_CALLS}, got {curve_calls}"
            )
        levels = [float(x) for x in load.split(",") if x.strip()]
        check_levels(levels, seconds)
        r = load_run_cached(str(run))
        plan = plan_validation(
            r, load_scenario(scenario), precision, levels, seconds, max_batch, max_delay_ms
        )
        check_output_dir(out_dir)  # before minutes of live serving, not after
    except (ScenarioError, ServiceError, RunFileError, ValueError) as exc:  # OutputPathError is a ValueError
        raise fail(str(exc)) from None
    from measure.batch.live import LiveError, LiveSession  # torch: only once the input is known to be good
    from measure.batch.resume import workload_of_run

    try:
        workload_of_run(r, workload)  # a user factory runs only when named on the command line
    except ValueError as exc:
        raise fail(str(exc)) from None

    results = []
    canaries: list[BatchCanary] = []
    what = ""
    try:
        with LiveSession(r, plan.precision, max_batch, plan.seq_len, user_workload=workload) as session:
            ratio = None
            for i, lv in enumerate(levels):
                lsc, what, traffic = level_traffic(plan, lv)
                rate = lv * plan.sustainable_rps
                canaries.append(_reading(session.canary(), lv))
                if i == 0:
                    ratio = canary_vs_run(plan, canaries[0].mean_ms)
                # half the curve before the level and half after: a host whose speed creeps during the level is
                # sampled on both sides of it, not only at its start
                before = (
                    session.curve(rate, (curve_calls + 1) // 2, lsc.seed + 2 * i) if curve_calls else None
                )
                if not as_json:
                    err.print(
                        f"load {lv:g}: {rate:.4g} req/s for {traffic.arrival_s[-1]:.1f} s live (canary "
                        f"{canaries[-1].mean_ms:.3g} ms) ...",
                        highlight=False,
                    )
                live = session.replay(traffic.arrival_s, traffic.items, plan.policy.max_delay_s)
                curve = None
                if before is not None:
                    after = session.curve(rate, curve_calls // 2, lsc.seed + 2 * i + 1)
                    curve = {b: before.samples_ms[b] + after.samples_ms[b] for b in before.samples_ms}
                la = live.load_average_after[0] if live.load_average_after else None
                served = Served(
                    live.scheduled_s, live.enqueue_s, live.done_s, live.batch_sizes, live.batch_service_s, la
                )
                results.append(predict_level(plan, lv, lsc, traffic, served, curve, ratio))
            canaries.append(_reading(session.canary(), None))
            notes, threads = session.notes, session.threads
    except (LiveError, ValueError) as exc:
        raise fail(str(exc)) from None
    notes = [*notes, *_canary_notes(canaries, ratio, r)]
    if curve_calls:
        notes.append(
            f"each level is judged from a curve measured around it in this session (half just before, half just "
            f"after): {curve_calls} calls of every batch size 1..{max_batch}, interleaved, each after an idle gap "
            "~ Exp(mean 1 / the level's rate), a generator thread waking at that rate; the run's own prediction is "
            "kept beside it"
        )
    v = validation(plan, what, results, threads, notes, canaries, curve_calls or None)
    path = save_validation(v, out_dir)
    if as_json:
        write_json(v.model_dump(mode="json"))
        return
    print_validation(v)
    out.print(escape(f"written: {path}"), highlight=False, soft_wrap=True)
