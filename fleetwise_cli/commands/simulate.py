"""`fleetwise simulate`: replay a scenario against a measured run or an assumed profile. Batch and LLM runs alike."""

from __future__ import annotations

from pathlib import Path

import typer

from fleetwise_cli.common import write_json
from fleetwise_cli.errors import fail
from fleetwise_cli.render.llm_simulation import print_llm_result
from fleetwise_cli.render.simulation import print_result
from measure.run import Run, RunFileError, load_run
from planner.llm.disagg import KvLink, decode_pool
from planner.llm.engine import EngineConfig, EngineError, kv_blocks_from_run
from planner.llm.simulation import run_llm_simulation
from planner.llm.steps import StepModelError, step_model
from planner.serving.profiles import load_profile
from planner.serving.routing import RouterError, router_for
from planner.serving.service import ServiceError, ServiceModel
from planner.serving.service_from import from_profile, from_run, scaled_model
from planner.serving.sim import BatchPolicy
from planner.serving.simulation import run_simulation
from planner.traffic.scenario import Scenario, ScenarioError, load_scenario


def simulate_llm(
    run: Run,
    sc: Scenario,
    precision: str | None,
    replicas: int,
    router: str | None,
    cfg_args: dict[str, int | bool | None],
    requests: int | None,
    seed: int | None,
    as_json: bool,
    pd: dict[str, float | int | None] | None = None,
) -> None:
    """Build the step model and engine knobs from the run and the options, simulate, print; with `pd` (decode
    replicas and the link), the replicas are the prefill pool and the decode pool is of the same shape."""
    model = step_model(run, precision)
    try:
        route = router_for(router or "round-robin", "LLM")
    except RouterError as exc:
        raise EngineError(str(exc)) from None
    block = int(cfg_args["block_size"] or 16)
    given = cfg_args["kv_blocks"]
    blocks, how = kv_blocks_from_run(run, model.precision, block, int(given) if given is not None else None)
    cfg = EngineConfig(
        max_num_seqs=int(cfg_args["max_num_seqs"] or 256),
        max_num_batched_tokens=int(cfg_args["max_num_batched_tokens"] or 8192),
        chunked_prefill=bool(cfg_args["chunked_prefill"]),
        block_size=block,
        kv_blocks=blocks,
        prefix_caching=bool(cfg_args["prefix_caching"]),
    )
    decode, link = None, None
    if pd is not None:
        decode = decode_pool(model, cfg, int(pd["decode_replicas"] or 0), route)
        link = _link(run, model.precision, pd)
    result = run_llm_simulation(
        sc,
        model,
        cfg,
        replicas,
        route,
        run,
        requests,
        seed,
        {"kv_blocks_from": how, "run": run.id},
        decode,
        link,
    )
    if as_json:
        write_json(result.model_dump(mode="json"))
        return
    print_llm_result(result)


def _link(run: Run, precision: str, pd: dict[str, float | int | None]) -> KvLink:
    """The KV link as given; KV bytes per token as given or from the run's memory facts at the precision."""
    if pd["gbps"] is None:
        raise EngineError("--decode-replicas needs the link between the pools: --kv-link-gbps (GB/s)")
    per = pd["kv_bytes_per_token"]
    how = "KV bytes per token given (--kv-bytes-per-token)"
    if per is None:
        mem = next((m for m in run.llm.memory if m.precision == precision), None) if run.llm else None
        if mem is None:
            raise EngineError(
                f"run {run.short_id()} does not record KV bytes per token at {precision}: give --kv-bytes-per-token"
            )
        per, how = mem.kv_bytes_per_token, f"KV bytes per token from the run ({mem.kv_method})"
    return KvLink(
        float(pd["gbps"]),
        float(pd["latency_ms"] or 0.0),
        float(per),
        f"stated: {pd['gbps']:g} GB/s and {pd['latency_ms'] or 0:g} ms a transfer; {how}",
    )


def simulate(
    run: Path = typer.Option(None, "--run", help="a measured run file"),
    precision: str = typer.Option(None, help="precision of the run to use (needed when it has several)"),
    profile: Path = typer.Option(None, "--profile", help="an assumed-profile YAML (what-if, not evidence)"),
    scenario: Path = typer.Option(..., "--scenario", help="a scenario YAML"),
    replicas: int = typer.Option(1, help="number of replicas"),
    router: str = typer.Option(
        None,
        help="batch: central | random | round-robin | least-outstanding (default central); LLM runs: round-robin "
        "(default) | least-outstanding | least-kv | prefix-aware (with --prefix-caching)",
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
    prefix_caching: bool = typer.Option(
        None,
        "--prefix-caching/--no-prefix-caching",
        help="LLM: vLLM's automatic prefix caching, matched on the prefixes a Mooncake trace names (default off)",
        rich_help_panel="LLM",
    ),
    decode_replicas: int = typer.Option(
        None,
        help="LLM: disaggregate: --replicas prefill and this many decode replicas (same shape and knobs), each "
        "request's KV sent between them",
        rich_help_panel="LLM disaggregated",
    ),
    kv_link_gbps: float = typer.Option(
        None, help="LLM disaggregated: each prefill replica's link, GB/s", rich_help_panel="LLM disaggregated"
    ),
    kv_link_latency_ms: float = typer.Option(
        None, help="LLM disaggregated: fixed time a transfer (default 0)", rich_help_panel="LLM disaggregated"
    ),
    kv_bytes_per_token: float = typer.Option(
        None,
        help="LLM disaggregated: KV bytes a token (default: the run's, at the precision)",
        rich_help_panel="LLM disaggregated",
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
            knobs: dict[str, int | bool | None] = {
                "max_num_seqs": max_num_seqs,
                "max_num_batched_tokens": max_num_batched_tokens,
                "chunked_prefill": chunked_prefill,
                "block_size": block_size,
                "kv_blocks": kv_blocks,
                "prefix_caching": bool(prefix_caching),
            }
            link_given = (kv_link_gbps, kv_link_latency_ms, kv_bytes_per_token)
            if decode_replicas is None and any(v is not None for v in link_given):
                raise EngineError(
                    "--kv-link-* and --kv-bytes-per-token describe a disaggregated fleet: give --decode-replicas"
                )
            if decode_replicas is not None and not 1 <= decode_replicas <= 10_000:
                raise EngineError(f"--decode-replicas must be in 1..10000, got {decode_replicas}")
            pd: dict[str, float | int | None] | None = (
                None
                if decode_replicas is None
                else {
                    "decode_replicas": decode_replicas,
                    "gbps": kv_link_gbps,
                    "latency_ms": kv_link_latency_ms,
                    "kv_bytes_per_token": kv_bytes_per_token,
                }
            )
            simulate_llm(loaded, sc, precision, replicas, router, knobs, requests, seed, as_json, pd)
            return
        llm_only = {
            "--max-num-seqs": max_num_seqs,
            "--max-num-batched-tokens": max_num_batched_tokens,
            "--block-size": block_size,
            "--kv-blocks": kv_blocks,
            "--prefix-caching": prefix_caching,
            "--decode-replicas": decode_replicas,
            "--kv-link-gbps": kv_link_gbps,
            "--kv-link-latency-ms": kv_link_latency_ms,
            "--kv-bytes-per-token": kv_bytes_per_token,
        }
        wrong = [k for k, v in llm_only.items() if v is not None]
        if wrong:  # refused, never silently dropped
            raise ServiceError(
                f"{', '.join(wrong)} {'applies' if len(wrong) == 1 else 'apply'} to LLM runs only"
            )
        try:
            router = router_for(router or "central", "batch")
        except RouterError as exc:
            raise ServiceError(str(exc)) from None
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
