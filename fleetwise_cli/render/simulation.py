"""A batch simulation's result: latency percentiles, utilization, SLOs."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out
from fleetwise_cli.render.checks import print_checks
from planner.serving.simulation import SimResult, Summary


def _ms(s: Summary | None, key: str) -> str:
    if s is None:
        return "-"
    v = getattr(s, key)
    # below a nanosecond is floating-point residue (a deterministic profile's CI), not a measured spread
    return "0" if abs(v) < 1e-6 else f"{v:.4g}"


def print_result(r: SimResult) -> None:
    """Human-readable result: source first, then latency, throughput, utilization, energy, SLOs, warnings."""
    tag = "[bold yellow]ASSUMED, NOT MEASURED[/]" if r.source == "assumed" else "[green]measured[/]"
    i = r.inputs
    out.print(
        f"{tag}: {escape(r.source_label)}\n"
        f"scenario {escape(str(i['scenario']))}: {i['replicas']} replica(s), router {i['router']}, "
        f"max_batch {i['max_batch']}, max_delay {i['max_delay_ms']:g} ms, seed {i['seed']}",
        highlight=False,
        soft_wrap=True,
    )
    if not r.stable:
        out.print(
            f"[bold red]stable: false[/] offered {r.offered_rps:.4g} req/s >= sustainable {r.sustainable_rps:.4g} "
            f"req/s: add replicas or raise max_batch",
            highlight=False,
        )
    else:
        t = Table(title=f"{r.requests_measured} requests measured ({escape(r.transient_rule)})")
        t.add_column("ms")
        for k in ("mean", "p50", "p90", "p95", "p99", "p999"):
            t.add_column(k)
        for name, s, ci in (
            ("latency", r.latency_ms, r.latency_ci95_halfwidth_ms),
            ("queueing", r.queue_ms, r.queue_ci95_halfwidth_ms),
        ):
            t.add_row(name, *(_ms(s, k) for k in ("mean", "p50", "p90", "p95", "p99", "p999")))
            if ci is not None:
                t.add_row("  ±95% CI", *(_ms(ci, k) for k in ("mean", "p50", "p90", "p95", "p99", "p999")))
        out.print(t)
        util = r.utilization or 0.0
        energy = (
            escape(
                f"{r.energy_j_per_request:.4g} J/request, {r.energy_j_per_unit:.4g} J/{r.unit.rstrip('s')}"
            )
            if r.energy_j_per_request is not None and r.energy_j_per_unit is not None
            else escape(r.energy_note)
        )
        out.print(
            f"offered {r.offered_rps:.4g} req/s, throughput {r.throughput_rps or 0:.4g} req/s, sustainable "
            f"{r.sustainable_rps:.4g} req/s; utilization {util:.1%}; mean batch {r.mean_batch_size or 0:.3g}; "
            f"rejected {r.rejected}; energy: {energy}",
            highlight=False,
            soft_wrap=True,
        )
    print_checks(r.slo, r.warnings)
