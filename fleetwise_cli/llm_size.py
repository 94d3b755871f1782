"""`fleetwise size` on LLM runs: replicas per engine configuration for TTFT/TPOT SLOs, cost per 1M tokens."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out, write_json
from planner.fleet.report import money
from planner.llm.sizing import LlmPlan


def parse_switches(text: str | None) -> tuple[bool, ...]:
    """`on`, `off` or `on,off` for chunked prefill."""
    if text is None:
        return (True,)
    vals = [v.strip().lower() for v in text.split(",") if v.strip()]
    if not vals or any(v not in ("on", "off") for v in vals):
        raise ValueError(f"--chunked-prefill takes on, off or on,off, got {text!r}")
    return tuple(dict.fromkeys(v == "on" for v in vals))


def print_llm_plan(plan: LlmPlan, as_json: bool) -> None:
    """The answer, then one row per option: replicas, SLO figures, cost per month and per 1M tokens, energy."""
    if as_json:
        write_json(plan.model_dump(mode="json"))
        return
    out.print(escape(f"{plan.scenario}: {'; '.join(plan.slos)} ({plan.pricing})"), highlight=False)
    out.print(f"[bold]answer:[/] {escape(plan.answer)}", highlight=False, soft_wrap=True)
    t = Table(title="LLM options (measured step times)")
    for col in (
        "device",
        "precision",
        "seqs",
        "tokens/step",
        "prefill",
        "replicas",
        "deployed",
        "meets SLO",
        "SLO figures ms",
        "$/month",
        "$/1M in",
        "$/1M out",
        "$/1M out all-in",
        "out tok/J",
        "notes",
    ):
        t.add_column(col, overflow="fold")
    for o in sorted(plan.options, key=lambda o: (not o.meets_slo, o.monthly_cost_usd or float("inf"))):
        figs = ", ".join(f"{k.split(' <=')[0]} {v:.3g}" for k, v in o.slo.items() if v is not None)
        t.add_row(
            escape(o.device),
            o.precision,
            str(o.max_num_seqs),
            str(o.max_num_batched_tokens),
            "chunked" if o.chunked_prefill else "whole",
            str(o.replicas or "-"),
            str(o.replicas_deployed or "-"),
            "[green]yes[/]" if o.meets_slo else "[red]no[/]",
            escape(figs),
            money(o.monthly_cost_usd),
            money(o.usd_per_1m_input_tokens),
            money(o.usd_per_1m_output_tokens),
            money(o.usd_per_1m_output_tokens_all_in),
            "-" if o.output_tokens_per_joule is None else f"{o.output_tokens_per_joule:.3g}",
            escape("; ".join(x for x in (o.why, o.not_priced) if x)),
        )
    t.caption = (
        "replicas: the fewest meeting every SLO; deployed: after the redundancy policy "
        f"({plan.options[0].redundancy if plan.options else 'none'}), what is costed. $/1M in and out split the "
        "cost by the engine's busy time in prefill and decode; all-in puts every dollar on the output tokens. "
        "Energy: out tok/J where the run measured energy per phase."
    )
    if plan.options:
        out.print(t)
    if plan.from_benchmarks:
        b = Table(
            title="From imported engine benchmarks (measured by the tool, no curves: no queueing simulated)"
        )
        for col in (
            "benchmark",
            "hardware",
            "capacity level",
            "req/s per replica",
            "replicas",
            "SLO figures ms",
            "$/month",
            "$/1M out all-in",
            "notes",
        ):
            b.add_column(col, overflow="fold")
        for x in plan.from_benchmarks:
            figs = ", ".join(f"{k.split(' <=')[0]} {v:.3g}" for k, v in x.slo.items() if v is not None)
            b.add_row(
                escape(f"{x.tool} {x.benchmark_id.removeprefix('sha256:')[:12]}"),
                escape(x.hardware),
                escape(x.level or "-"),
                "-" if x.capacity_rps is None else f"{x.capacity_rps:.3g}",
                str(x.replicas or "-"),
                escape(figs),
                money(x.monthly_cost_usd),
                money(x.usd_per_1m_output_tokens_all_in),
                escape("; ".join(v for v in (x.why, x.not_priced, *x.warnings) if v)),
            )
        out.print(b)
    warns = list(dict.fromkeys(w for o in plan.options for w in o.warnings))
    for w in [*plan.notes, *warns]:
        out.print(f"[yellow]note:[/] {escape(w)}", highlight=False, soft_wrap=True)
