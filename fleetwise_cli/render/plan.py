"""Sizing plans (batch and LLM) as tables and the answer sentence."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out, write_json
from planner.fleet.plan import Plan
from planner.fleet.ranking import PlannedOption
from planner.fleet.report import money, quality_text
from planner.llm.sizing import LlmPlan, LlmSized


def _cache(o: LlmSized) -> str:
    """What the prefix cache did and the router chosen, as the prefill cell says them (nothing by default)."""
    routed = f"; routed {o.router}" if o.router else ""
    if o.disaggregated:
        routed += (
            f"; disaggregated {o.prefill_replicas} prefill + {o.decode_replicas} decode"
            if o.prefill_replicas
            else "; disaggregated"
        )
    if not o.prefix_caching:
        return routed
    hit = "-" if o.prefix_hit_share is None else f"{o.prefix_hit_share:.0%}"
    return f"; prefix cache, {hit} of prompt tokens cached{routed}"


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
        "replica",
        "replicas",
        "deployed",
        "devices",
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
            escape(o.shown_device),
            o.precision,
            str(o.max_num_seqs),
            str(o.max_num_batched_tokens),
            ("chunked" if o.chunked_prefill else "whole") + _cache(o),
            escape(o.replica),
            str(o.replicas or "-"),
            str(o.replicas_deployed or "-"),
            str(o.devices_deployed or "-"),
            "[green]yes[/]" if o.meets_slo else "[red]no[/]",
            escape(figs),
            money(o.monthly_cost_usd),
            money(o.usd_per_1m_input_tokens),
            money(o.usd_per_1m_output_tokens),
            money(o.usd_per_1m_output_tokens_all_in),
            "-" if o.output_tokens_per_joule is None else f"{o.output_tokens_per_joule:.3g}",
            escape(
                "; ".join(
                    x
                    for x in (
                        f"ANOTHER MODEL: {o.another_model}" if o.another_model else None,
                        o.why,
                        o.not_priced,
                    )
                    if x
                )
            ),
        )
    t.caption = (
        "replicas: the fewest meeting every SLO; deployed: after the redundancy policy "
        f"({plan.options[0].redundancy if plan.options else 'none'}); devices: deployed x devices per replica, "
        "what is costed (price per device-hour). $/1M in and out split the "
        "cost by the engine's busy time in prefill and decode; all-in puts every dollar on the output tokens. "
        "Energy: out tok/J where the run measured energy per phase."
    )
    if plan.options:
        out.print(t)
    if plan.from_benchmarks:
        b = Table(
            title="From imported engine benchmarks (one curve per engine, model and hardware: measured by the tool, "
            "interpolated between levels, no queueing simulated)"
        )
        for col in (
            "benchmark files",
            "hardware",
            "replica",
            "capacity between levels",
            "req/s per replica",
            "replicas",
            "devices",
            "SLO figures ms",
            "$/month",
            "$/1M out all-in",
            "notes",
        ):
            b.add_column(col, overflow="fold")
        for x in plan.from_benchmarks:
            figs = ", ".join(f"{k.split(' <=')[0]} {v:.3g}" for k, v in x.slo.items() if v is not None)
            b.add_row(
                escape(f"{x.tool} " + ", ".join(i.removeprefix("sha256:")[:12] for i in x.benchmark_ids)),
                escape(x.hardware),
                escape(x.replica),
                escape(" and ".join(v for v in (x.level, x.capacity_above) if v) or "-"),
                "-" if x.capacity_rps is None else f"{x.capacity_rps:.3g}",
                str(x.replicas or "-"),
                str(x.devices or "-"),
                escape(figs),
                money(x.monthly_cost_usd),
                money(x.usd_per_1m_output_tokens_all_in),
                escape(
                    "; ".join(v for v in (x.why, x.not_priced, *x.warnings) if v)
                ),  # ANOTHER MODEL leads the warnings
            )
        out.print(b)
    warns = list(dict.fromkeys(w for o in plan.options for w in o.warnings))
    for w in [*plan.notes, *warns]:
        out.print(f"[yellow]note:[/] {escape(w)}", highlight=False, soft_wrap=True)


def _evidence(o: PlannedOption) -> str:
    if o.source == "assumed":
        return "ASSUMED " + o.evidence_ids[0].removeprefix("assumed-profile:")
    short = o.representative.removeprefix("sha256:")[:12]
    return f"{o.device} run {short}" + (f" (+{len(o.evidence_ids) - 1})" if len(o.evidence_ids) > 1 else "")


def print_plan(plan: Plan) -> None:
    """The answer table per comparability group, then what was left out."""
    out.print(
        f"[bold]{escape(plan.scenario)}[/]: SLO {escape('; '.join(plan.slo))}; peak {plan.peak_rate_rps:.4g} req/s "
        f"(mean {plan.mean_rate_rps:.4g}), growth x{plan.growth:g}; pricing {plan.pricing}; redundancy "
        f"{escape(plan.redundancy)}; ranked by {plan.rank_by}",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"sized at: {escape(plan.sized_at)}", highlight=False, soft_wrap=True)
    if plan.service_scale != 1.0:
        out.print(f"[yellow]assumption:[/] every service time x{plan.service_scale:g}", highlight=False)
    for g in plan.groups:
        opts = [o for o in plan.options if o.key in g.options]
        title = ("[bold yellow]ASSUMED, NOT MEASURED[/]: " if g.source == "assumed" else "") + escape(g.label)
        t = Table(title=title, title_justify="left")
        for c in (
            "#",
            "evidence",
            "prec",
            "batch",
            "delay",
            "replicas",
            "SLO",
            "p99 ms",
            "$/month",
            "$/1k req",
        ):
            t.add_column(c)
        for c in ("$/1M tok", "units/J", "util", "quality vs fp32"):
            t.add_column(c)
        for o in opts:
            reps = "-" if o.replicas is None else f"{o.replicas_deployed}"
            if o.replicas is not None and (
                o.replicas_optimistic != o.replicas or o.replicas_deployed != o.replicas
            ):
                reps += f" ({o.replicas} sized, {o.replicas_optimistic} opt.)"
            cost = money(o.monthly_cost_usd) + (
                "*" if o.cost is not None and not o.cost.cost_complete else ""
            )
            if o.not_priced:
                cost = "[yellow]not priced[/]"
            t.add_row(
                str(o.rank or "-"),
                escape(_evidence(o)),
                o.precision or "-",
                str(o.max_batch),
                f"{o.max_delay_ms:g} ms",
                reps,
                "[green]met[/]" if o.meets_slo else "[red]no[/]",
                "-" if o.latency_ms is None else f"{o.latency_ms.p99:.4g}",
                cost,
                money(o.cost_per_1k_requests_usd),
                money(o.cost_per_1m_tokens_usd),
                "-" if o.units_per_joule is None else f"{o.units_per_joule:.4g}",
                "-" if o.utilization_peak is None else f"{o.utilization_peak:.0%}",
                quality_text(o),
            )
        out.print(t)
        for o in opts:
            if not o.meets_slo and o.reason:
                out.print(
                    f"  [red]no answer[/] {escape(o.label)}: {escape(o.reason)}",
                    highlight=False,
                    soft_wrap=True,
                )
    for why in dict.fromkeys(o.not_priced for o in plan.options if o.not_priced):
        out.print(
            f"[yellow]{escape(why)}[/] (sized, not costed: add the device to the price book)",
            highlight=False,
            soft_wrap=True,
        )
    if any(o.cost is not None and not o.cost.cost_complete for o in plan.options):
        out.print("* lower bound: energy is not in the price and the evidence has no power measurement")
    if plan.not_comparable:
        out.print(f"[yellow]{escape(plan.not_comparable)}[/]", highlight=False, soft_wrap=True)
    out.print(f"[bold]answer[/]:\n{escape(plan.answer)}", highlight=False, soft_wrap=True)
    for w in sorted({w for o in plan.options for w in o.warnings}):
        out.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    for s in plan.skipped:
        out.print(f"[dim]left out: {escape(s)}[/]", highlight=False, soft_wrap=True)
    out.print(
        f"{plan.simulations} simulations ({plan.simulations_reused} reused from another max_batch, identical), "
        f"{plan.simulations_stopped_early} stopped early: {plan.stopping_rule}",
        highlight=False,
        soft_wrap=True,
    )
