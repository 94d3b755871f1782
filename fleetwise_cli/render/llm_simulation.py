"""An LLM simulation's result: latency percentiles, rates, KV use, energy, SLOs."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out
from fleetwise_cli.render.checks import print_checks
from planner.llm.simulation import LlmResult


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def print_llm_result(r: LlmResult) -> None:
    """TTFT, TPOT, ITL and E2E percentiles, rates, KV use, preemptions, energy, SLOs and warnings."""
    i = r.inputs
    out.print(
        escape(
            f"measured: {r.evidence}\nscenario {i['scenario']}: {i['replicas']} replica(s), router {i['router']}, "
            f"max_num_seqs {i['max_num_seqs']}, max_num_batched_tokens {i['max_num_batched_tokens']}, chunked "
            f"prefill {'on' if i['chunked_prefill'] else 'off'}, {i['kv_blocks']} KV blocks of {i['block_size']} "
            f"tokens ({i['kv_blocks_from']}); token scale {r.token_scale:g}"
        ),
        highlight=False,
        soft_wrap=True,
    )
    if not r.stable:
        out.print(
            f"[bold red]stable: false[/] offered {r.offered_rps:.4g} req/s; the fleet completed "
            f"{r.throughput_when_saturated_rps or 0:.4g} req/s while its queues grew: add replicas",
            highlight=False,
        )
    t = Table(title=f"{r.requests_measured} requests measured ({r.warmup_excluded} warm-up excluded)")
    t.add_column("ms")
    keys = ("mean", "p50", "p90", "p95", "p99", "p999")
    for k in keys:
        t.add_column(k)
    for name, s, ci in (
        ("TTFT", r.ttft_ms, r.ttft_ci95_halfwidth_ms),
        ("TPOT", r.tpot_ms, r.tpot_ci95_halfwidth_ms),
        ("ITL", r.itl_ms, None),
        ("E2E", r.e2e_ms, r.e2e_ci95_halfwidth_ms),
    ):
        t.add_row(name, *(_ms(getattr(s, k) if s else None) for k in keys))
        if ci is not None:
            t.add_row("  ±95% CI", *(_ms(getattr(ci, k)) for k in keys))
    out.print(t)
    energy = (
        f"{r.energy_j_per_request:.4g} J/request, {r.energy_j_per_output_token:.4g} J/output token, "
        f"{r.output_tokens_per_joule:.4g} output tokens/J, {r.total_tokens_per_joule:.4g} tokens/J (input + output)"
        if r.energy_j_per_request is not None
        and r.energy_j_per_output_token is not None
        and r.output_tokens_per_joule is not None
        and r.total_tokens_per_joule is not None
        else r.energy_note
    )
    good = "-" if r.goodput_rps is None else f"{r.goodput_rps:.4g} req/s"
    out.print(
        escape(
            f"offered {r.offered_rps:.4g} req/s, throughput {r.throughput_rps:.4g} req/s, goodput {good}; "
            f"{r.input_tokens_per_s:.4g} input and {r.output_tokens_per_s:.4g} output tokens/s; KV cache "
            f"{r.kv_cache_utilization:.1%} used (busy time); {r.preemptions} preemptions; {r.steps:,} steps; "
            + (
                f"prefix cache: {r.prefix_hit_share:.1%} of prompt tokens found cached, {r.prefix_evicted_blocks:,} "
                "blocks evicted; "
                if r.prefix_hit_share is not None
                else ""
            )
            + f"energy: {energy}"
        ),
        highlight=False,
        soft_wrap=True,
    )

    print_checks(r.slo, r.warnings)
