"""An engine benchmark and its checks against the engine model, as tables."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out
from planner.evidence.engine_benchmark import EngineBenchmark
from planner.llm.bench_check import BenchCheck


def _cell(stat: object, key: str) -> str:
    v = getattr(stat, key, None) if stat is not None else None
    return "-" if v is None else f"{v:.3g}"


def print_benchmark(b: EngineBenchmark) -> None:
    """One row per level: traffic, requests, TTFT/TPOT/ITL/E2E p50 and p99 as the tool reported them."""
    t = Table(
        title=escape(
            f"{b.tool} {b.tool_version} ({b.tool_format}): {b.model} on {b.engine}; hardware {b.hardware}; "
            f"a replica is {b.replica.label()} ({b.replica.source})"
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
