"""`fleetwise import` (engine benchmark results from vllm bench serve, GuideLLM, AIPerf) and
`fleetwise validate --benchmark` (such a result predicted from an LLM run's curves)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import fail, out, write_json
from measure.run import RunFileError, check_output_dir, load_run
from planner.evidence.bench_import import import_file
from planner.evidence.engine_benchmark import BenchmarkFileError, EngineBenchmark, save_benchmark
from planner.llm.bench_check import BenchCheck, check_benchmark
from planner.llm.engine import EngineConfig, EngineError, kv_blocks_from_run
from planner.llm.steps import StepModelError, step_model


def import_cmd(
    file: Path = typer.Argument(..., help="a vllm bench serve, GuideLLM or AIPerf result JSON"),
    out_dir: Path = typer.Option(Path("data/benchmarks"), "--out", help="folder for the evidence file"),
    hardware: str = typer.Option(
        None, help="what the engine ran on (results rarely say): e.g. '1x H100 80GB'"
    ),
    as_json: bool = typer.Option(False, "--json", help="the evidence file as JSON on stdout"),
) -> None:
    """Convert a load generator's result into a fleetwise engine benchmark (evidence), with the tool's names."""
    try:
        check_output_dir(out_dir)
        b = import_file(file, hardware)
        path = save_benchmark(b, out_dir)
    except (BenchmarkFileError, ValueError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write into {out_dir}: {exc.strerror or exc}") from None
    if as_json:
        write_json(b.model_dump(mode="json"))
        return
    print_benchmark(b)
    out.print(escape(f"written: {path}"), highlight=False, soft_wrap=True)


def _cell(stat: object, key: str) -> str:
    v = getattr(stat, key, None) if stat is not None else None
    return "-" if v is None else f"{v:.3g}"


def print_benchmark(b: EngineBenchmark) -> None:
    """One row per level: traffic, requests, TTFT/TPOT/ITL/E2E p50 and p99 as the tool reported them."""
    t = Table(
        title=escape(
            f"{b.tool} {b.tool_version} ({b.tool_format}): {b.model} on {b.engine}; hardware {b.hardware}"
        ),
        title_justify="left",
    )
    for c in (
        "level",
        "traffic",
        "done/failed",
        "req/s",
        "TTFT p50/p99",
        "TPOT p50/p99",
        "ITL p50/p99",
        "E2E p50/p99",
        "per-request",
    ):
        t.add_column(c)
    for lv in b.levels:
        t.add_row(
            escape(lv.label),
            lv.traffic,
            f"{lv.completed}/{'-' if lv.failed is None else lv.failed}",
            "-" if lv.request_rps is None else f"{lv.request_rps:.3g}",
            *[
                f"{_cell(getattr(lv, m), 'p50')}/{_cell(getattr(lv, m), 'p99')}"
                for m in ("ttft", "tpot", "itl", "e2e")
            ],
            str(len(lv.requests)),
        )
    out.print(t)
    for n in b.notes:
        out.print(f"[yellow]note:[/] {escape(n)}", highlight=False, soft_wrap=True)


def validate_benchmark(
    benchmark: Path,
    run: Path,
    precision: str | None,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    chunked_prefill: bool,
    block_size: int,
    kv_blocks: int | None,
    as_json: bool,
) -> None:
    """Predict an imported (or importable) benchmark from the run's curves and print the error per metric."""
    try:
        bench = import_file(benchmark)
        r = load_run(run)
        if not r.is_llm:
            raise StepModelError(
                f"run {r.short_id()} is a batch run: a benchmark of an LLM engine needs an LLM run"
            )
        have = sorted({p.precision for p in r.points if p.phase is not None and p.latency_ms})
        prec = precision or (have[0] if len(have) == 1 else "")
        if prec not in have:
            raise StepModelError(f"--precision: the run has LLM points at {', '.join(have)}; name one")
        model = step_model(r, prec)
        blocks, _ = kv_blocks_from_run(r, prec, block_size, kv_blocks)
        cfg = EngineConfig(max_num_seqs, max_num_batched_tokens, chunked_prefill, block_size, blocks)
        check = check_benchmark(bench, r, prec, model, cfg)
    except (BenchmarkFileError, RunFileError, StepModelError, EngineError, ValueError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        write_json(check.model_dump(mode="json"))
        return
    print_check(check)


def print_check(c: BenchCheck) -> None:
    """Reported vs predicted per level and metric, with the error in %."""
    t = Table(
        title=escape(
            f"{c.tool} {c.tool_version} benchmark {c.benchmark_id.removeprefix('sha256:')[:12]} vs run "
            f"{c.run_id.removeprefix('sha256:')[:12]} {c.precision} ({', '.join(f'{k} {v}' for k, v in c.knobs.items())})"
        ),
        title_justify="left",
    )
    for col in (
        "level",
        "metric",
        "reported p50/p99 ms",
        "predicted p50/p99 ms",
        "error p50 / p99",
        "mean err",
    ):
        t.add_column(col)
    for lv in c.levels:
        if lv.skipped:
            t.add_row(escape(lv.label), "-", "-", "-", escape(f"not predicted: {lv.skipped}"), "")
            continue
        for m, rep in lv.reported.items():
            pred = lv.predicted.get(m, {})
            e = lv.error_pct

            def pair(d: dict[str, float]) -> str:
                return f"{d['p50']:.3g}/{d['p99']:.3g}" if "p50" in d and "p99" in d else "-"

            t.add_row(
                escape(lv.label),
                m.upper(),
                pair(rep),
                pair(pred),
                " / ".join(f"{e[f'{m}.{q}']:+.0f}%" if f"{m}.{q}" in e else "-" for q in ("p50", "p99")),
                f"{e[f'{m}.mean']:+.0f}%" if f"{m}.mean" in e else "-",
            )
    out.print(t)
    for lv in c.levels:
        if lv.how:
            out.print(f"[dim]{escape(lv.label)}: {escape(lv.how)}[/]", highlight=False, soft_wrap=True)
    for n in c.notes:
        out.print(f"[yellow]note:[/] {escape(n)}", highlight=False, soft_wrap=True)
