"""`fleetwise size`: fleet sizing with cost and an audit report; run-vs-run checks."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetwise_cli.common import err, write_json
from fleetwise_cli.errors import fail
from fleetwise_cli.options import _list, parse_switches
from fleetwise_cli.render.plan import print_llm_plan, print_plan
from measure.run import RunFileError, check_output_file
from planner.fleet.levels import SIZING_REQUESTS
from planner.fleet.options import SizingError
from planner.fleet.plan import RANK_BY, Question, Redundancy, make_plan, sensitivity
from planner.fleet.prices import PRICINGS, PriceError, load_prices
from planner.fleet.report import evidence_for, write_report
from planner.fleet.sizing import MAX_REPLICAS
from planner.serving.routing import router_for
from planner.serving.service import ServiceError
from planner.traffic.scenario import Scenario, ScenarioError, load_scenario
from planner.workers import Executor, ExecutorError, check_executor, executor_from_env, load_run_cached

LLM_SIZING_REQUESTS = 3000  # per replica count: an LLM request is many engine steps


def _size_llm(
    sc: Scenario,
    runs: list[Path],
    profiles: list[Path],
    precision: str | None,
    prices: Path,
    pricing: str,
    requests: int,
    max_replicas: int,
    seqs: str | None,
    tokens: str | None,
    chunked: str | None,
    kv_blocks: int | None,
    as_json: bool,
    report: Path | None,
    validations: Path,
    benchmarks: list[Path],
    jobs: int,
    redundancy: Redundancy,
    executor: Executor,
) -> None:
    from planner.evidence.bench_import import import_file
    from planner.evidence.engine_benchmark import BenchmarkFileError
    from planner.llm.report import llm_validations_for, write_llm_report
    from planner.llm.sizing import DEFAULT_BATCHED_TOKENS, DEFAULT_SEQS, LlmSizingError, size_llm

    try:
        if profiles:
            raise SizingError("assumed profiles describe batch serving: size LLM runs without --profiles")
        if pricing not in PRICINGS:
            raise SizingError(f"unknown pricing {pricing!r}: use {', '.join(PRICINGS)}")
        if not 1 <= max_replicas <= 10_000:
            raise SizingError(f"--max-replicas must be in 1..10000, got {max_replicas}")
        if not 100 <= requests <= 1_000_000:
            raise SizingError(f"--requests must be in 100..1000000 for a generative scenario, got {requests}")
        grid_seqs = _list(seqs, int, "--max-num-seqs") or DEFAULT_SEQS
        grid_tokens = _list(tokens, int, "--max-num-batched-tokens") or DEFAULT_BATCHED_TOKENS
        if min(grid_seqs) < 1 or min(grid_tokens) < 1:
            raise SizingError("--max-num-seqs and --max-num-batched-tokens values must be >= 1")
        if report is not None:
            if report.suffix.lower() not in (".md", ".html", ".htm"):
                raise SizingError(f"--report {report}: the file name must end in .md or .html")
            check_output_file(report)  # before the search, not after it
        book = load_prices(prices)
        evidence = tuple(import_file(b) for b in benchmarks)
        plan = size_llm(
            sc,
            [str(p) for p in runs],
            [v.strip() for v in precision.split(",") if v.strip()] if precision else None,
            grid_seqs,
            grid_tokens,
            parse_switches(chunked),
            book,
            pricing,  # type: ignore[arg-type]
            requests=requests,
            max_replicas=max_replicas,
            kv_blocks=kv_blocks,
            benchmarks=evidence,
            jobs=jobs,
            redundancy=redundancy,
            executor=executor,
        )
        if report is not None:
            cited = {r.id: r for r in map(load_run_cached, map(str, runs))}
            write_llm_report(report, plan, sc, book, cited, llm_validations_for(list(cited), validations))
    except (
        ScenarioError,
        ServiceError,
        RunFileError,
        PriceError,
        SizingError,
        LlmSizingError,
        BenchmarkFileError,
        ValueError,
    ) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # the report's folder vanished or filled up after the check
        raise fail(f"cannot write {report}: {exc.strerror or exc}") from None
    print_llm_plan(plan, as_json)
    if report is not None:
        err.print(escape(f"report written to {report}"), highlight=False, soft_wrap=True)


def size(
    scenario: Path = typer.Option(..., "--scenario", help="a scenario YAML with at least one SLO"),
    runs: list[Path] = typer.Option([], "--runs", help="measured run files (repeat the option)"),
    profiles: list[Path] = typer.Option([], "--profiles", help="assumed-profile YAML files (what-if)"),
    precision: str = typer.Option(None, help="comma-separated precisions (default: every ok one)"),
    max_batch: str = typer.Option(None, help="comma-separated max_batch grid (default 1,4,16,64 + largest)"),
    max_delay_ms: str = typer.Option(None, help="comma-separated max_delay grid in ms (default 0,5)"),
    prices: Path = typer.Option(Path("data/prices.yaml"), help="price book YAML"),
    pricing: str = typer.Option("on_demand", help="on_demand | reserved | owned"),
    router: str = typer.Option(
        None, help="central | random | round-robin | least-outstanding (default central; batch scenarios)"
    ),
    rank_by: str = typer.Option(
        None, help="monthly_cost | cost_per_1k | tokens_per_joule (default monthly_cost; batch scenarios)"
    ),
    spares: int = typer.Option(0, help="redundancy: N+k spare replicas after sizing"),
    headroom: float = typer.Option(
        0.0, help="redundancy: extra fraction of replicas after sizing (0.2 = 20%)"
    ),
    requests: int = typer.Option(
        None,
        help=f"arrivals simulated per steady level (default {SIZING_REQUESTS:,}; generative scenarios "
        f"{LLM_SIZING_REQUESTS:,} per replica count)",
    ),
    max_replicas: int = typer.Option(MAX_REPLICAS, help="give up above this many replicas"),
    jobs: int = typer.Option(0, help="worker processes (0: one per CPU)"),
    executor: str = typer.Option(
        None,
        help="local (worker processes) or ray (a Ray cluster: FLEETWISE_RAY_ADDRESS, else a local one); default "
        "FLEETWISE_EXECUTOR, else ray when FLEETWISE_RAY_ADDRESS is set, else local",
    ),
    exclude_throttled: bool = typer.Option(False, help="leave out points flagged as throttled"),
    service_scale: float = typer.Option(
        None,
        help="multiply every service time (an assumption, e.g. the live/isolated ratio of a validation; "
        "default 1; batch scenarios)",
    ),
    full_length: bool = typer.Option(
        False,
        "--full-length",
        help="simulate every count to full length (no early stop on a settled verdict)",
    ),
    as_json: bool = typer.Option(False, "--json", help="the plan as JSON on stdout"),
    report: Path = typer.Option(None, help="write the audit report (.md or .html) with sensitivity tables"),
    validations: Path = typer.Option(
        Path("data/validations"), help="live validation files cited in the report"
    ),
    max_num_seqs: str = typer.Option(
        None, help="LLM runs: max_num_seqs grid (default 64,256)", rich_help_panel="LLM"
    ),
    max_num_batched_tokens: str = typer.Option(
        None, help="LLM runs: max_num_batched_tokens grid (default 2048,8192)", rich_help_panel="LLM"
    ),
    chunked_prefill: str = typer.Option(
        None, help="LLM runs: on, off or on,off (default on)", rich_help_panel="LLM"
    ),
    kv_blocks: int = typer.Option(
        None,
        help="LLM runs: KV blocks of 16 tokens per replica (default: from the run)",
        rich_help_panel="LLM",
    ),
    benchmarks: list[Path] = typer.Option(
        [],
        "--benchmarks",
        help="generative scenarios: engine benchmarks (imported, or vllm/GuideLLM/AIPerf results) as evidence of "
        "per-replica capacity at the SLOs, where no curves exist (repeat the option)",
        rich_help_panel="LLM",
    ),
) -> None:
    """Size a fleet per option: fewest replicas meeting every SLO, monthly cost, cost per request/token, energy.

    LLM runs size generative scenarios (TTFT/TPOT/ITL/E2E SLOs) over engine knobs x precision."""
    try:
        chosen = check_executor(executor) if executor is not None else executor_from_env()
    except ExecutorError as exc:
        raise fail(f"--executor: {exc}") from None
    try:
        sc = load_scenario(scenario)  # read once: it decides batch or generative and is then sized
    except ScenarioError as exc:
        raise fail(str(exc)) from None
    generative = sc.llm is not None
    batch_only = {
        "--router": router is not None,
        "--rank-by": rank_by is not None,
        "--max-batch": max_batch is not None,
        "--max-delay-ms": max_delay_ms is not None,
        "--service-scale": service_scale is not None,
        "--exclude-throttled": exclude_throttled,
        "--full-length": full_length,
    }
    llm_only = {
        "--max-num-seqs": max_num_seqs is not None,
        "--max-num-batched-tokens": max_num_batched_tokens is not None,
        "--chunked-prefill": chunked_prefill is not None,
        "--kv-blocks": kv_blocks is not None,
        "--benchmarks": bool(benchmarks),
    }
    wrong = [k for k, given in (batch_only if generative else llm_only).items() if given]
    if wrong:  # an option that does not apply is refused, never silently dropped
        kind = "a generative (LLM) scenario" if generative else "a batch scenario"
        raise fail(
            f"{', '.join(wrong)} {'does' if len(wrong) == 1 else 'do'} not apply to {kind}: {scenario}"
        )
    try:
        red = Redundancy(spares, headroom)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if generative:
        _size_llm(
            sc,
            runs,
            profiles,
            precision,
            prices,
            pricing,
            LLM_SIZING_REQUESTS if requests is None else requests,
            max_replicas,
            max_num_seqs,
            max_num_batched_tokens,
            chunked_prefill,
            kv_blocks,
            as_json,
            report,
            validations,
            benchmarks,
            jobs if jobs > 0 else (os.cpu_count() or 1),
            red,
            chosen,
        )
        return
    requests = SIZING_REQUESTS if requests is None else requests
    router = router or "central"
    rank_by = rank_by or "monthly_cost"
    service_scale = 1.0 if service_scale is None else service_scale
    try:
        if not runs and not profiles:
            raise SizingError("give at least one --runs or --profiles file")
        if pricing not in PRICINGS:
            raise SizingError(f"unknown pricing {pricing!r}: use {', '.join(PRICINGS)}")
        router = router_for(router, "batch")
        if rank_by not in RANK_BY:
            raise SizingError(f"unknown --rank-by {rank_by!r}: use {', '.join(RANK_BY)}")
        if not 1_000 <= requests <= 2_000_000:
            raise SizingError(f"--requests must be in 1000..2000000, got {requests}")
        if not 0.1 <= service_scale <= 10:
            raise SizingError(f"--service-scale must be in 0.1..10, got {service_scale:g}")
        if not 1 <= max_replicas <= 10_000:
            raise SizingError(f"--max-replicas must be in 1..10000, got {max_replicas}")
        if report is not None and report.suffix.lower() not in (".md", ".html", ".htm"):
            raise SizingError(f"--report {report}: the file name must end in .md or .html")
        batches = _list(max_batch, int, "--max-batch")
        delays = _list(max_delay_ms, float, "--max-delay-ms")
        if batches and min(batches) < 1:
            raise SizingError("--max-batch values must be >= 1")
        if delays and min(delays) < 0:
            raise SizingError("--max-delay-ms values must be >= 0")
        if report is not None:
            check_output_file(report)  # before the search, not after it
        for p in runs:
            load_run_cached(str(p))  # a bad run file is named before any simulation; read once per process
        book = load_prices(prices)
        q = Question(
            scenario=sc,
            runs=tuple(str(p) for p in runs),
            profiles=tuple(str(p) for p in profiles),
            precisions=tuple(v.strip() for v in precision.split(",") if v.strip()) if precision else None,
            max_batches=batches,
            max_delays_ms=delays,
            router=router,  # type: ignore[arg-type]
            pricing=pricing,  # type: ignore[arg-type]
            rank_by=rank_by,  # type: ignore[arg-type]
            redundancy=red,
            sizing_requests=requests,
            max_replicas=max_replicas,
            exclude_throttled=exclude_throttled,
            service_scale=service_scale,
            early_stop=not full_length,
        )
        n_jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
        with _progress(as_json) as bar:
            task = bar.add_task("sizing", total=None)

            def tick(done: int, total: int, label: str) -> None:
                bar.update(
                    task, completed=done, total=total, description=f"sizing {label[:60]}", refresh=True
                )

            plan = make_plan(q, book, jobs=n_jobs, progress=tick, executor=chosen)
            rows = None
            if report is not None:
                t2 = bar.add_task("sensitivity", total=None)
                rows = sensitivity(
                    q,
                    book,
                    plan,
                    n_jobs,
                    lambda d, t, _l: bar.update(t2, completed=d, total=t, refresh=True),
                    chosen,
                )
        if report is not None:
            write_report(report, plan, book, rows, evidence_for(list(q.runs), validations))
    except (ScenarioError, ServiceError, RunFileError, PriceError, SizingError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:  # the report's folder vanished or filled up after the check
        raise fail(f"cannot write {report}: {exc.strerror or exc}") from None
    if as_json:
        write_json(plan.model_dump(mode="json"))
    else:
        print_plan(plan)
    if report is not None:
        err.print(escape(f"report written to {report}"), highlight=False, soft_wrap=True)


def _progress(quiet: bool) -> Progress:
    # drawn when an option finishes, not by a refresh thread: a single-threaded CLI forks its sizing workers
    # (fast), where a process with threads must start them from a forkserver (about 2.5 s)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        auto_refresh=False,
        disable=quiet or not err.is_terminal,
    )
