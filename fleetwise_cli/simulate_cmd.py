"""`fleetwise simulate`: replay a scenario against a measured run or an assumed profile."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import fail, out, write_json
from fleetwise_cli.render.checks import print_checks
from measure.run import RunFileError, load_run
from planner.llm.engine import EngineError
from planner.llm.steps import StepModelError
from planner.serving.service import (
    ServiceError,
    ServiceModel,
    from_profile,
    from_run,
    load_profile,
    scaled_model,
)
from planner.serving.sim import ROUTERS, BatchPolicy
from planner.serving.simulation import SimResult, Summary, run_simulation
from planner.traffic.scenario import ScenarioError, load_scenario


def simulate(
    run: Path = typer.Option(None, "--run", help="a measured run file"),
    precision: str = typer.Option(None, help="precision of the run to use (needed when it has several)"),
    profile: Path = typer.Option(None, "--profile", help="an assumed-profile YAML (what-if, not evidence)"),
    scenario: Path = typer.Option(..., "--scenario", help="a scenario YAML"),
    replicas: int = typer.Option(1, help="number of replicas"),
    router: str = typer.Option(
        None,
        help="central | random | rr | jsq (default central); LLM runs: round-robin | least-outstanding | least-kv",
    ),
    max_batch: int = typer.Option(1, help="largest batch, in items"),
    max_delay_ms: float = typer.Option(0.0, help="how long the oldest request may wait for a fuller batch"),
    queue_capacity: int = typer.Option(None, help="bound on queued requests per queue (default: unbounded)"),
    requests: int = typer.Option(None, help="simulate this many arrivals (overrides the scenario's window)"),
    seed: int = typer.Option(None, help="random seed (overrides the scenario's)"),
    exclude_throttled: bool = typer.Option(
        False, help="leave out points flagged power-capped, thermal-slowdown or hw-slowdown"
    ),
    service_scale: float = typer.Option(
        1.0, help="multiply every service time (an assumption, e.g. the live/isolated ratio of a validation)"
    ),
    as_json: bool = typer.Option(False, "--json", help="one JSON object on stdout"),
    max_num_seqs: int = typer.Option(
        None, help="LLM: running sequences per replica (default 256)", rich_help_panel="LLM"
    ),
    max_num_batched_tokens: int = typer.Option(
        None, help="LLM: tokens per engine step (default 8192)", rich_help_panel="LLM"
    ),
    chunked_prefill: bool = typer.Option(
        True, help="LLM: split long prompts across steps", rich_help_panel="LLM"
    ),
    block_size: int = typer.Option(
        None, help="LLM: KV-cache block size in tokens (default 16)", rich_help_panel="LLM"
    ),
    kv_blocks: int = typer.Option(
        None,
        help="LLM: KV blocks per replica (default: the run's KV tokens that fit / block size)",
        rich_help_panel="LLM",
    ),
) -> None:
    """Simulate a serving fleet: latency percentiles, throughput, utilization, energy and SLOs."""
    try:
        if (run is None) == (profile is None):
            raise ServiceError("give exactly one of --run or --profile")
        if replicas < 1 or replicas > 10_000:
            raise ServiceError(f"replicas must be in 1..10000, got {replicas}")
        if requests is not None and not 0 < requests <= 10_000_000:
            raise ServiceError(f"requests must be in 1..10000000, got {requests}")
        if seed is not None and seed < 0:
            raise ServiceError(f"seed must be >= 0, got {seed}")
        sc = load_scenario(scenario)
        loaded = load_run(run) if run is not None else None
        if loaded is not None and loaded.is_llm:
            from fleetwise_cli.llm_simulate import simulate_llm

            knobs: dict[str, int | bool | None] = {
                "max_num_seqs": max_num_seqs,
                "max_num_batched_tokens": max_num_batched_tokens,
                "chunked_prefill": chunked_prefill,
                "block_size": block_size,
                "kv_blocks": kv_blocks,
            }
            simulate_llm(loaded, sc, precision, replicas, router, knobs, requests, seed, as_json)
            return
        router = router or "central"
        if router not in ROUTERS:
            raise ServiceError(f"unknown router {router!r}: use {', '.join(ROUTERS)}")
        model: ServiceModel
        if loaded is not None:
            flags = frozenset(
                {"power-capped", "thermal-slowdown", "hw-slowdown"} if exclude_throttled else set()
            )
            model = from_run(loaded, precision, flags)
        else:
            if precision is not None:
                raise ServiceError("--precision applies to --run only")
            model = from_profile(load_profile(profile))
        model = scaled_model(model, service_scale)
        policy = BatchPolicy(max_batch, max_delay_ms / 1000.0, queue_capacity)
        result = run_simulation(
            sc,
            model,
            replicas,
            router,  # type: ignore[arg-type]
            policy,
            requests=requests,
            seed=seed,
            extra_inputs={
                "run": str(run) if run else None,
                "profile": str(profile) if profile else None,
                "precision": precision,
                "service_scale": service_scale,
            },
        )
    except (ScenarioError, ServiceError, RunFileError, StepModelError, EngineError, ValueError) as exc:
        raise fail(str(exc)) from None
    if as_json:
        write_json(result.model_dump(mode="json"))
        return
    print_result(result)


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
