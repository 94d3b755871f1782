"""`fleetwise` console script: measure, runs, show, schema, simulate, size, compare, validate.

Library code raises typed errors; here they become one line on stderr and exit code 2. torch is imported
only by `measure`, so listing runs and printing schemas work without it.
"""

from __future__ import annotations

import importlib.metadata
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.bench_cmd import import_cmd
from fleetwise_cli.campaign_cmd import campaign
from fleetwise_cli.common import (
    EXIT_INTERRUPTED,
    err,
    fail,
    out,
    remember_interrupts,
    save_or_fallback,
    sigterm_as_interrupt,
    write_json,
)
from fleetwise_cli.simulate_cmd import simulate
from fleetwise_cli.size_cmd import compare, size
from fleetwise_cli.validate_cmd import validate
from measure.run import (
    Point,
    Run,
    RunFileError,
    Unavailable,
    check_output_dir,
    load_run,
    run_json_schema,
)
from planner.evidence.catalog import Catalog, CatalogError, scan_runs

DEFAULT_MAX_BATCH = 256  # the default batch list is 1, 2, 4, ... up to this (earlier at an OOM)

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Measured capacity planning for AI inference fleets."
)


def _version(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("fleetwise")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        sys.stdout.write(f"fleetwise {version}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version and exit"
    ),
) -> None:
    """Measured capacity planning for AI inference fleets."""


schema_app = typer.Typer(no_args_is_help=True, help="Print the JSON Schema of a file format.")
app.add_typer(schema_app, name="schema")


@schema_app.command("scenario")
def schema_scenario() -> None:
    """JSON Schema of the scenario file (planner/traffic/scenario.py)."""
    from planner.traffic.scenario import scenario_json_schema

    write_json(scenario_json_schema(), indent=2)


@schema_app.command("price-book")
def schema_price_book() -> None:
    """JSON Schema of the price-book file (planner/fleet/prices.py)."""
    from planner.fleet.prices import price_book_json_schema

    write_json(price_book_json_schema(), indent=2)


@schema_app.command("engine-benchmark")
def schema_engine_benchmark() -> None:
    """JSON Schema of the engine benchmark evidence file (planner/evidence/engine_benchmark.py)."""
    from planner.evidence.engine_benchmark import EngineBenchmark

    write_json(EngineBenchmark.model_json_schema(), indent=2)


@schema_app.command("llm-validation")
def schema_llm_validation() -> None:
    """JSON Schema of the LLM live validation file (planner/evidence/llm_validation.py)."""
    from planner.evidence.llm_validation import LlmValidation

    write_json(LlmValidation.model_json_schema(), indent=2)


@schema_app.command("profile")
def schema_profile() -> None:
    """JSON Schema of the assumed-profile file (planner/serving/service.py)."""
    from planner.serving.service import profile_json_schema

    write_json(profile_json_schema(), indent=2)


app.command("simulate")(simulate)
app.command("size")(size)
app.command("compare")(compare)
app.command("validate")(validate)
app.command("import")(import_cmd)
app.command("campaign", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(campaign)


@schema_app.command("run")
def schema_run() -> None:
    """JSON Schema of the run file (measure/run/)."""
    write_json(run_json_schema(), indent=2)


@app.command("runs")
def runs_cmd(
    folder: Path = typer.Argument(Path("data/runs"), help="folder holding run files"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout instead of a table"),
) -> None:
    """List the runs in a folder with their key facts; files that fail to load are named with the reason."""
    try:
        catalog = scan_runs(folder)
    except CatalogError as exc:
        raise fail(str(exc)) from None
    if as_json:
        write_json(catalog_json(catalog))
        return
    table = Table(title=escape(f"runs in {folder}"))
    for col in (
        "id",
        "workload",
        "device",
        "created (UTC)",
        "precisions",
        "points ok/total",
        "complete",
        "file",
    ):
        table.add_column(col)
    for s in catalog.runs:
        r = s.run
        table.add_row(
            r.short_id(),
            escape(r.workload.name),
            escape(f"{r.stack.device_kind}: {r.stack.device_name}"),
            r.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            ",".join(s.precisions),
            f"{s.ok_points}/{len(r.points)}",
            "yes" if r.sweep.complete else "NO (resume it)",
            escape(s.path.name),
        )
    out.print(table)
    for path, why in catalog.rejected:
        err.print(f"[yellow]skipped[/] {escape(path.name)}: {escape(why)}", highlight=False, soft_wrap=True)


def catalog_json(catalog: Catalog) -> dict[str, Any]:
    """The key facts of every run and the rejected files, for scripts."""
    runs = [
        {
            "id": s.run.id,
            "path": str(s.path),
            "workload": s.run.workload.name,
            "unit": s.run.workload.unit,
            "device_kind": s.run.stack.device_kind,
            "device_name": s.run.stack.device_name,
            "created_at": s.run.created_at.isoformat(),
            "precisions": s.precisions,
            "status_counts": s.status_counts,
            "complete": s.run.sweep.complete,
        }
        for s in catalog.runs
    ]
    return {"runs": runs, "rejected": [{"path": str(p), "reason": why} for p, why in catalog.rejected]}


@app.command("show")
def show_cmd(path: Path = typer.Argument(..., help="a run file")) -> None:
    """Print a run's context line and its summary table (the table `measure` prints at the end)."""
    try:
        run = load_run(path)
    except RunFileError as exc:
        raise fail(str(exc)) from None
    st = run.stack
    out.print(
        escape(
            f"run {run.short_id()}  created {run.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC  "
            f"{'complete' if run.sweep.complete else 'INCOMPLETE'}\n"
            f"stack: {st.device_kind} {st.device_name}; torch {st.torch_version} ({st.torch_build}), "
            f"{st.torch_num_threads} threads, {st.compile_mode}\n"
            f"method: {run.methodology.timer}, scope {run.methodology.iteration_scope}, "
            f"CI target {run.methodology.stopping.ci_target_relative:.0%}, "
            f"{run.methodology.stopping.min_seconds:g}-{run.methodology.stopping.max_seconds:g} s per point"
        ),
        highlight=False,
        soft_wrap=True,
    )
    if run.is_llm:
        from fleetwise_cli.llm_cmd import print_llm

        print_llm(run)
        return
    out.print(summary_table(run))
    print_pacing(run)
    if run.soak is not None:
        out.print(soak_table(run))


def print_pacing(run: Run) -> None:
    """The paced bins of every point (service time by idle gap before the batch), or why there are none."""
    paced = [p for p in run.points if p.paced is not None]
    if not paced:
        out.print(
            "pacing: not measured (back to back only: optimistic under intermittent load; measure with --pacing)",
            highlight=False,
        )
        return
    title = f"service time after an idle gap ({run.sweep.pacing or 'paced'}): p50 ms [x back to back]"
    t = Table(title=escape(title))
    first = paced[0].paced
    assert first is not None
    # load mode: each load's gap follows the point's own service time, so columns are loads, cells say the gap
    heads = [f"load {x:g}" for x in first.loads or []] if first.mode == "load" else []
    for col in [
        "precision",
        "batch",
        "seq",
        "back to back",
        *(heads or [f"{b.gap_ms:g} ms" for b in first.bins]),
    ]:
        t.add_column(col, overflow="fold")
    for p in paced:
        assert p.paced is not None and p.latency_ms is not None
        b2b = p.latency_ms.median
        cells = [
            escape(
                (f"after {b.gap_ms:.3g} ms: " if heads else "")
                + f"{_fmt(b.latency_ms.median)} [x{b.latency_ms.median / b2b:.2f}]"
                + ("" if b.converged else " *")
            )
            for b in p.paced.bins
        ]
        t.add_row(p.precision, str(p.batch_size), str(p.seq_len or "-"), _fmt(b2b), *cells)
    t.caption = "* the bin hit its time limit before its CI target (the run file has its verdict)"
    out.print(t)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def summary_table(run: Run) -> Table:
    """One row per measured point; points not run for the same reason share one row (batch range)."""
    t = Table(title=escape(f"{run.workload.name} on {run.stack.device_name} ({run.stack.device})"))
    unit = escape(run.workload.unit)
    for col in (
        "precision",
        "batch",
        "seq",
        "status",
        "warm/meas",
        "p50 ms",
        "p99 ms [95% CI]",
        "mean ±CI",
        "items/s",
        f"{unit}/s",
        "TFLOP/s",
        "W",
        f"mJ/{unit.rstrip('s') or unit}",
        "vs fp32 err, top-1",
        "notes",
    ):
        t.add_column(col, overflow="fold")
    quality = _quality_cells(run)
    for group in _groups(run.points):
        row = _point_row(group[0])
        if len(group) > 1:
            row[1] = f"{group[0].batch_size}-{group[-1].batch_size}"
        row.insert(-1, quality.get((group[0].precision, group[0].seq_len), "-"))
        t.add_row(*row)
    t.caption = _power_caption(run)
    return t


def _quality_cells(run: Run) -> dict[tuple[str, int | None], str]:
    if run.quality is None:
        return {}
    cells: dict[tuple[str, int | None], str] = {}
    for q in run.quality.entries:
        if q.status != "ok":
            cells[(q.precision, q.seq_len)] = f"{q.status}"
            continue
        top1 = "" if q.top1_agreement is None else f", {q.top1_agreement:.0%}"
        cells[(q.precision, q.seq_len)] = f"{q.rel_l2_error:.1e}{top1}"
    return cells


def _power_caption(run: Run) -> str:
    idle = run.idle_power
    if idle is None:
        return "power: not measured (run format version 1)"
    if isinstance(idle, Unavailable):
        return escape(f"power and energy unavailable: {idle.unavailable}")
    return escape(
        f"idle power {idle.power_w:.1f} W ({idle.method}, {idle.window_s:.1f} s); W and mJ cover {idle.domain}"
    )


def _groups(points: list[Point]) -> list[list[Point]]:
    """Consecutive points that were not measured for the same reason, grouped; measured points alone."""
    groups: list[list[Point]] = []
    for p in points:
        prev = groups[-1][-1] if groups else None
        same = (
            prev is not None
            and p.latency_ms is None
            and prev.latency_ms is None
            and (p.precision, p.seq_len, p.status, p.reason)
            == (prev.precision, prev.seq_len, prev.status, prev.reason)
        )
        if same:
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def _point_row(p: Point) -> list[str]:
    base = [p.precision, str(p.batch_size), str(p.seq_len or "-")]
    colour = {"ok": "green", "unstable": "yellow", "oom": "magenta", "unsupported": "dim", "failed": "red"}[
        p.status
    ]
    status = f"[{colour}]{p.status}[/]"
    if p.latency_ms is None:
        return [*base, status, "-", "-", "-", "-", "-", "-", "-", "-", "-", escape(p.reason or "")]
    lat = p.latency_ms
    ci = "n/a" if lat.mean_ci95_halfwidth_rel is None else f"±{lat.mean_ci95_halfwidth_rel:.1%}"
    hi = _fmt(lat.p99_ci95_high) if lat.p99_ci95_high is not None else "n/a"
    notes = escape(", ".join([*p.flags, *([p.reason] if p.reason else [])]))
    return [
        *base,
        status,
        f"{p.warmup_iterations_excluded}/{p.measured_iterations}",
        _fmt(lat.median),
        f"{_fmt(lat.p99)} [{_fmt(lat.p99_ci95_low)}, {hi}]",
        ci,
        _fmt(p.throughput_items_per_s, 4),
        _fmt(p.throughput_units_per_s, 4),
        _fmt(p.achieved_tflops),
        *_energy_cells(p),
        notes,
    ]


def soak_table(run: Run) -> Table:
    """The soak's windows (at most 12 rows, evenly spaced) and its verdict as the caption."""
    assert run.soak is not None
    soak = run.soak
    t = Table(
        title=f"soak: {soak.duration_s:.0f} s in {soak.window_s:g} s windows (early: first {soak.early_s:g} s)"
    )
    for col in ("window s", "items/s", "p50 ms", "p99 ms", "W", "mJ/item", "SM MHz", "max °C", "reasons"):
        t.add_column(col)
    idx = np.unique(np.linspace(0, len(soak.windows) - 1, min(12, len(soak.windows))).round().astype(int))
    for i in idx:
        w = soak.windows[int(i)]
        t.add_row(
            f"{_fmt(w.start_s)}-{_fmt(w.end_s)}",
            _fmt(w.throughput_items_per_s, 4),
            _fmt(w.latency_p50_ms),
            _fmt(w.latency_p99_ms),
            _fmt(w.power_mean_w),
            _fmt(w.energy_per_item_j * 1000 if w.energy_per_item_j is not None else None),
            _fmt(w.sm_clock_mean_mhz, 4),
            _fmt(w.temperature_max_c),
            escape(", ".join(w.reasons_seen)),
        )
    t.caption = escape(soak.verdict)
    return t


def _energy_cells(p: Point) -> list[str]:
    tel = p.telemetry
    if tel is None or isinstance(tel, Unavailable):
        return ["-", "-"]
    watts = "-" if isinstance(tel.power_w, Unavailable) else f"{tel.power_w.mean_w:.1f}"
    e = tel.energy
    if isinstance(e, Unavailable):
        return [watts, "-"]
    per = e.energy_per_unit_j if e.energy_per_unit_j is not None else e.energy_per_item_j
    return [watts, f"{per * 1000:.3g}"]


@app.command("measure")
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
    output_tokens: int = typer.Option(
        32, help="max_tokens of every engine request", rich_help_panel="LLM engine"
    ),
    requests: int = typer.Option(48, help="most requests per engine setting", rich_help_panel="LLM engine"),
    request_timeout: float = typer.Option(
        60.0, help="per-request time-out, seconds", rich_help_panel="LLM engine"
    ),
    engine_param: list[str] = typer.Option(
        [],
        help="what the engine is: engine=vllm, version=..., max_num_seqs=..., device_kind=cuda, device_name=...",
        rich_help_panel="LLM engine",
    ),
) -> None:
    """Measure steady-state latency/throughput curves across precision and batch size; write a run file.

    LLMs: `-w llm -p preset=tiny|1b|8b`, `-w hf-config:config.json` or `-w hf:FOLDER` measure prefill, decode and
    mixed steps in-process; `--endpoint URL --model NAME` measures a running streaming server."""
    from fleetwise_cli.llm_cmd import LlmOptions, measure_engine, measure_llm

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
    )
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
        from fleetwise_cli.progress import RichProgress, SoakProgress
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


def main() -> None:
    """Console-script entry point."""
    remember_interrupts()
    app()


if __name__ == "__main__":
    main()
