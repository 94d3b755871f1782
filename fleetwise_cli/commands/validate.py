"""`fleetwise validate`: serve a run's workload live under a scenario's arrivals and check the simulator."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import typer
from rich.markup import escape

from fleetwise_cli.common import err, out, write_json
from fleetwise_cli.errors import fail
from fleetwise_cli.render.validation import print_validation
from measure.run import RunFileError, check_output_dir
from planner.evidence.validation import (
    P50_TARGET_PCT,
    P99_TARGET_PCT,
    TARGET_UP_TO_LOAD,
    Validation,
    compare_level,
    cpu_count,
    live_service_model,
    save_validation,
    verdict,
    with_back_to_back,
    with_live_service,
)
from planner.serving.service import ServiceError
from planner.serving.service_from import from_run
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import run_simulation
from planner.traffic.arrivals import generate
from planner.traffic.scenario import Fixed, Gamma, Poisson, Scenario, ScenarioError, load_scenario
from planner.workers import load_run_cached


def _level_scenario(sc: Scenario, rate: float, seconds: float, seq_len: int | None) -> tuple[Scenario, str]:
    a = sc.arrivals
    if isinstance(a, Gamma):
        arrivals: Poisson | Gamma = Gamma(process="gamma", rate_rps=rate, cv=a.cv)
        what = f"gamma arrivals (cv {a.cv:g}) as in the scenario"
    else:
        arrivals = Poisson(process="poisson", rate_rps=rate)
        what = "Poisson arrivals" + (
            "" if isinstance(a, Poisson) else f" (the scenario's {a.process} replaced)"
        )
    size = sc.size
    if seq_len is not None:
        size = size.model_copy(update={"seq_len": Fixed(dist="fixed", value=seq_len)})
    n = max(200, int(rate * seconds))
    return sc.model_copy(
        update={"arrivals": arrivals, "requests": n, "duration_s": None, "growth": 1.0, "size": size}
    ), what


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
    max_batch: int = typer.Option(1, help="largest batch, in items"),
    max_delay_ms: float = typer.Option(0.0, help="how long the oldest request may wait for a fuller batch"),
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
    engine_param: list[str] = typer.Option(
        [], "--engine-param", help="LLM runs: key=value recorded with the engine", rich_help_panel="LLM"
    ),
    recheck: Path = typer.Option(
        None,
        help="LLM runs: re-predict the live traffic recorded in this LLM validation file with the current model "
        "(nothing is sent; the new file goes to --out)",
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
    if recheck is not None:
        from fleetwise_cli.commands.validate_llm import recheck_llm

        recheck_llm(recheck, run, out_dir, as_json)
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
            )
        )
        return
    try:
        levels = [float(x) for x in load.split(",") if x.strip()]
        if not levels or any(not 0 < x < 1 for x in levels):
            raise ServiceError(f"--load must be fractions in (0, 1), got {load!r}")
        if not 1 <= seconds <= 3600:
            raise ServiceError(f"--seconds must be in 1..3600, got {seconds:g}")
        r = load_run_cached(str(run))
        sc = load_scenario(scenario)
        model = from_run(r, precision)
        # a paced run is also predicted from its back-to-back samples alone: the table shows what pacing changed
        unpaced = r.model_copy(update={"points": [p.model_copy(update={"paced": None}) for p in r.points]})
        back_to_back = from_run(unpaced, precision) if any(p.paced for p in r.points) else None
        prec = precision or next(p.precision for p in r.points if p.status == "ok")
        policy = BatchPolicy(max_batch, max_delay_ms / 1000.0)
        if max_batch > model.max_batch:
            raise ServiceError(f"max_batch {max_batch} is above what the run measured: {model.limit_reason}")
        seq = model.seq_lens[0] if model.seq_lens else None
        probe, _ = _level_scenario(sc, 1.0, 10_000, seq)
        mean_items = float(generate(probe).items.mean())
        per_s = model.sustainable_items_per_s(max_batch, seq) / mean_items
        check_output_dir(out_dir)  # before minutes of live serving, not after
    except (ScenarioError, ServiceError, RunFileError, ValueError) as exc:  # OutputPathError is a ValueError
        raise fail(str(exc)) from None
    from measure.batch.live import LiveError, serve_live  # torch: only once the input is known to be good
    from measure.batch.resume import workload_of_run

    try:
        workload_of_run(r, workload)  # a user factory runs only when named on the command line
    except ValueError as exc:
        raise fail(str(exc)) from None

    results = []
    notes: list[str] = []
    threads = 0
    what = ""
    table, _ = model.table_for(seq)
    for lv in levels:
        rate = lv * per_s
        lsc, what = _level_scenario(sc, rate, seconds, seq)
        traffic = generate(lsc, np.random.default_rng(np.random.SeedSequence(lsc.seed).spawn(3)[0]))
        if not as_json:
            err.print(
                f"load {lv:g}: {rate:.4g} req/s for {traffic.arrival_s[-1]:.1f} s live ...", highlight=False
            )
        try:
            live = serve_live(
                r,
                prec,
                traffic.arrival_s,
                traffic.items,
                max_batch,
                policy.max_delay_s,
                seq,
                user_workload=workload,
            )
        except (LiveError, ValueError) as exc:
            raise fail(str(exc)) from None
        pred = run_simulation(lsc, model, 1, "central", policy, traffic=traffic)
        la = live.load_average_after[0] if live.load_average_after else None
        level = compare_level(
            lv,
            rate,
            pred,
            live.scheduled_s,
            live.enqueue_s,
            live.done_s,
            live.batch_sizes,
            live.batch_service_s,
            lsc.warmup_fraction,
            lambda b: (lambda base: base[0].median_ms * base[1])(table.base(b)),
            la,
            cpu_count(),
        )
        live_model = live_service_model(model, live.batch_sizes, live.batch_service_s, max_batch)
        again = run_simulation(lsc, live_model, 1, "central", policy, traffic=traffic)
        level = with_live_service(level, again)
        if back_to_back is not None:
            b2b = run_simulation(lsc, back_to_back, 1, "central", policy, traffic=traffic)
            level = with_back_to_back(level, b2b)
        results.append(level)
        notes, threads = live.notes, live.threads
    v = Validation(
        run_id=r.id,
        precision=prec,
        scenario=sc.name,
        arrivals=what,
        max_batch=max_batch,
        max_delay_ms=max_delay_ms,
        seconds=seconds,
        seq_len=seq,
        created_at=datetime.now(UTC),
        device=r.stack.device_name,
        threads=threads,
        cpu_count=cpu_count(),
        notes=notes,
        targets=f"|p50 error| <= {P50_TARGET_PCT:g}% and |p99 error| <= {P99_TARGET_PCT:g}% at loads up to "
        f"{TARGET_UP_TO_LOAD:g}; above that the error is reported, not judged",
        levels=results,
        verdict=verdict(results),
    )
    path = save_validation(v, out_dir)
    if as_json:
        write_json(v.model_dump(mode="json"))
        return
    print_validation(v)
    out.print(escape(f"written: {path}"), highlight=False, soft_wrap=True)
