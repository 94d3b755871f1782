"""`fleetwise size`: fleet sizing with cost and an audit report; run-vs-run checks."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleetwise_cli.common import err, write_json
from fleetwise_cli.errors import fail
from fleetwise_cli.options import _list, parse_switches
from fleetwise_cli.render.plan import print_llm_plan, print_plan
from measure.run import Run, check_output_dir, check_output_file
from planner.fleet.levels import SIZING_REQUESTS
from planner.fleet.options import SizingError
from planner.fleet.plan import Plan, sensitivity
from planner.fleet.prices import PriceBook, load_prices
from planner.fleet.redundancy import Redundancy
from planner.fleet.report import evidence_for, write_report
from planner.fleet.sizing import MAX_REPLICAS
from planner.llm.sizing import LlmPlan
from planner.question.request import LLM_SIZING_REQUESTS, SizingRequest, answer
from planner.traffic.scenario import load_scenario
from planner.workers import Executor, ExecutorError, check_executor, executor_from_env, load_run_cached

# the request's fields as this command names them, for one-line refusals
FLAGS = {
    "runs": "--runs",
    "profiles": "--profiles",
    "max_replicas": "--max-replicas",
    "requests": "--requests",
    "router": "--router",
    "rank_by": "--rank-by",
    "max_batches": "--max-batch",
    "max_delays_ms": "--max-delay-ms",
    "service_scale": "--service-scale",
    "exclude_throttled": "--exclude-throttled",
    "full_length": "--full-length",
    "max_num_seqs": "--max-num-seqs",
    "max_num_batched_tokens": "--max-num-batched-tokens",
    "chunked_prefill": "--chunked-prefill",
    "prefix_caching": "--prefix-caching",
    "llm_routers": "--router",
    "disaggregated": "--disaggregated",
    "kv_link_gbps": "--kv-link-gbps",
    "kv_link_latency_ms": "--kv-link-latency-ms",
    "kv_bytes_per_token": "--kv-bytes-per-token",
    "kv_blocks": "--kv-blocks",
    "benchmarks": "--benchmarks",
    "any_model": "--any-model",
}


def size(
    scenario: Path = typer.Option(..., "--scenario", help="a scenario YAML with at least one SLO"),
    runs: list[Path] = typer.Option([], "--runs", help="measured run files (repeat the option)"),
    profiles: list[Path] = typer.Option([], "--profiles", help="assumed-profile YAML files (what-if)"),
    precision: str = typer.Option(None, help="comma-separated precisions (default: every ok one)"),
    max_batch: str = typer.Option(None, help="comma-separated max_batch grid (default 1,4,16,64 + largest)"),
    max_delay_ms: str = typer.Option(None, help="comma-separated max_delay grid in ms (default 0,5)"),
    prices: Path = typer.Option(Path("data/prices.yaml"), help="price book YAML"),
    pricing: str = typer.Option(
        "on_demand", help="on_demand | reserved (1-year term) | reserved_3y | owned (capex + hosting + power)"
    ),
    router: str = typer.Option(
        None,
        help="batch: central | random | round-robin | least-outstanding (default central); generative: a comma "
        "list of round-robin, least-outstanding, least-kv, prefix-aware (with --prefix-caching on) sized side by "
        "side (default least-outstanding, prefix-aware with the cache)",
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
    save_plan: Path = typer.Option(
        None,
        "--save-plan",
        help="save the plan and its question into this folder (for fleetwise compare-plans)",
    ),
    plan_name: str = typer.Option(
        None, "--plan-name", help="the saved plan's name (default: scenario-pricing)"
    ),
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
    disaggregated: str = typer.Option(
        None,
        help="generative: off | on | on,off: prefill and decode pools of the option's shape, the split of "
        "replicas searched, beside aggregated (needs --kv-link-gbps)",
    ),
    kv_link_gbps: float = typer.Option(
        None, help="generative, disaggregated: each prefill replica's link, GB/s"
    ),
    kv_link_latency_ms: float = typer.Option(
        None, help="generative, disaggregated: fixed time a KV transfer (default 0)"
    ),
    kv_bytes_per_token: float = typer.Option(
        None, help="generative, disaggregated: KV bytes a token (default: the run's or profile's)"
    ),
    prefix_caching: str = typer.Option(
        None,
        help="LLM runs: vLLM's prefix caching, routed prefix-aware, on the prefixes a Mooncake trace names: on, "
        "off or on,off (both, side by side; default off)",
        rich_help_panel="LLM",
    ),
    kv_blocks: int = typer.Option(
        None,
        help="LLM runs: KV blocks of 16 tokens per replica (default: from the run)",
        rich_help_panel="LLM",
    ),
    any_model: bool = typer.Option(
        False,
        "--any-model",
        help="generative scenarios that name their model: also use runs and benchmarks of other models, "
        "labelled ANOTHER MODEL in every output",
        rich_help_panel="LLM",
    ),
    benchmarks: list[Path] = typer.Option(
        [],
        "--benchmarks",
        help="generative scenarios: engine benchmarks (imported, or vllm/GuideLLM/AIPerf results; a folder: every "
        ".json in it) as evidence of per-replica capacity at the SLOs; the files of one engine, model and hardware "
        "make one curve (repeat the option)",
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
        req = SizingRequest(
            scenario=sc,
            runs=tuple(str(p) for p in runs),
            profiles=tuple(str(p) for p in profiles),
            precisions=tuple(v.strip() for v in precision.split(",") if v.strip()) if precision else None,
            pricing=pricing,
            redundancy=Redundancy(spares, headroom),
            max_replicas=max_replicas,
            requests=requests,
            router=router if sc.llm is None else None,
            llm_routers=tuple(r.strip() for r in router.split(",") if r.strip())
            if router is not None and sc.llm is not None
            else None,
            rank_by=rank_by,
            max_batches=_list(max_batch, int, "--max-batch"),
            max_delays_ms=_list(max_delay_ms, float, "--max-delay-ms"),
            service_scale=service_scale,
            exclude_throttled=exclude_throttled,
            full_length=full_length,
            max_num_seqs=_list(max_num_seqs, int, "--max-num-seqs"),
            max_num_batched_tokens=_list(max_num_batched_tokens, int, "--max-num-batched-tokens"),
            chunked_prefill=parse_switches(chunked_prefill) if chunked_prefill is not None else None,
            prefix_caching=parse_switches(prefix_caching, "--prefix-caching", False)
            if prefix_caching is not None
            else None,
            disaggregated=parse_switches(disaggregated, "--disaggregated", False)
            if disaggregated is not None
            else None,
            kv_link_gbps=kv_link_gbps,
            kv_link_latency_ms=kv_link_latency_ms,
            kv_bytes_per_token=kv_bytes_per_token,
            kv_blocks=kv_blocks,
            any_model=any_model,
        )
        req.check(FLAGS)  # an option of the other kind, or out of bounds: one line, before anything is read
        if report is not None:
            if report.suffix.lower() not in (".md", ".html", ".htm"):
                raise SizingError(f"--report {report}: the file name must end in .md or .html")
            check_output_file(report)  # before the search, not after it
        if save_plan is not None:
            check_output_dir(save_plan)
        for p in runs:
            load_run_cached(str(p))  # a bad run file is named before any simulation; read once per process
        if benchmarks:
            from planner.evidence.bench_import import benchmark_paths, import_file

            req = replace(req, benchmarks=tuple(import_file(b) for b in benchmark_paths(benchmarks)))
        book = load_prices(prices)
        n_jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
        if req.generative:
            plan: Plan | LlmPlan = _answer_generative(req, book, n_jobs, chosen, as_json, report, validations)
        else:
            plan = _answer_batch(req, book, n_jobs, chosen, as_json, report, validations)
        if save_plan is not None:
            from planner.question.saved import question_record, saved_plan
            from planner.question.saved import save_plan as write_plan

            name = plan_name or f"{req.scenario.name}-{req.pricing}"
            record = saved_plan(name, req.scenario, plan, question_record(req), datetime.now(UTC))
            err.print(
                escape(f"plan saved to {write_plan(record, save_plan)}"), highlight=False, soft_wrap=True
            )
    except ValueError as exc:  # every reader's and the planner's errors: one line
        raise fail(str(exc)) from None
    except OSError as exc:  # the report's folder vanished or filled up after the check
        raise fail(f"cannot write {report}: {exc.strerror or exc}") from None
    if report is not None:
        err.print(escape(f"report written to {report}"), highlight=False, soft_wrap=True)


def _answer_generative(
    req: SizingRequest,
    book: PriceBook,
    jobs: int,
    executor: Executor,
    as_json: bool,
    report: Path | None,
    validations: Path,
) -> LlmPlan:
    from planner.llm.report import llm_validations_for, write_llm_report

    plan = answer(req, book, jobs, None, executor)
    assert isinstance(plan, LlmPlan)
    if report is not None:
        from planner.llm.roofline import LlmProfile, load_llm_profile

        cited: dict[str, Run | LlmProfile] = {r.id: r for r in map(load_run_cached, req.runs)}
        cited |= {p.id: p for p in map(load_llm_profile, req.profiles)}
        write_llm_report(
            report,
            plan,
            req.scenario,
            book,
            cited,
            llm_validations_for([i for i, r in cited.items() if isinstance(r, Run)], validations),
            {b.id: b for b in req.benchmarks},
        )
    print_llm_plan(plan, as_json)
    return plan


def _answer_batch(
    req: SizingRequest,
    book: PriceBook,
    jobs: int,
    executor: Executor,
    as_json: bool,
    report: Path | None,
    validations: Path,
) -> Plan:
    with _progress(as_json) as bar:
        task = bar.add_task("sizing", total=None)

        def tick(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=f"sizing {label[:60]}", refresh=True)

        plan = answer(req, book, jobs, tick, executor)
        assert isinstance(plan, Plan)
        rows = None
        if report is not None:
            t2 = bar.add_task("sensitivity", total=None)
            rows = sensitivity(
                req.batch_question(),
                book,
                plan,
                jobs,
                lambda d, t, _l: bar.update(t2, completed=d, total=t, refresh=True),
                executor,
            )
    if report is not None:
        write_report(report, plan, book, rows, evidence_for(list(req.runs), validations))
    if as_json:
        write_json(plan.model_dump(mode="json"))
    else:
        print_plan(plan)
    return plan


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
