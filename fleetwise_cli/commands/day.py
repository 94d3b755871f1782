"""`fleetwise day`: an LLM fleet over a diurnal day, sized hour by hour, with the engine's start-up time through
every up-ramp (planner/llm/day.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out, write_json
from fleetwise_cli.errors import fail
from measure.run import RunFileError, load_run
from planner.fleet.prices import PriceError, load_prices
from planner.llm.day import DAYS_PER_MONTH, DayError, LlmDay
from planner.llm.day_request import DayRequest, answer_day
from planner.llm.engine import EngineError
from planner.llm.steps import StepModelError
from planner.serving.routing import RouterError
from planner.traffic.scenario import ScenarioError, load_scenario


def day(
    scenario: Path = typer.Option(..., "--scenario", help="a generative scenario with diurnal arrivals"),
    run: Path = typer.Option(..., "--run", help="the measured LLM run whose step times serve it"),
    precision: str = typer.Option(None, help="the run's precision (needed when it has several)"),
    startup_s: str = typer.Option(
        "0,90",
        help="engine start-up times to compare, s (model load, graph capture), each its own day; `run`: the "
        "start-up the run timed (measure --endpoint --engine-pid)",
    ),
    cooldown_s: float = typer.Option(300.0, help="how long surplus replicas are kept after demand falls, s"),
    ramp_s: float = typer.Option(300.0, help="seconds of each up-ramp simulated (the new hour's first)"),
    router: str = typer.Option(
        "least-outstanding", help="round-robin | least-outstanding | least-kv | prefix-aware (with the cache)"
    ),
    max_num_seqs: int = typer.Option(256, help="the engine's max_num_seqs"),
    max_num_batched_tokens: int = typer.Option(8192, help="the engine's token budget per step"),
    block_size: int = typer.Option(16, help="KV block size in tokens"),
    kv_blocks: int = typer.Option(None, help="KV blocks per replica (default: the run's)"),
    prefix_caching: bool = typer.Option(
        False, help="vLLM's prefix cache on every replica (the scenario's llm.prefix says what prompts share)"
    ),
    spares: int = typer.Option(0, help="N+k spare replicas every hour"),
    autoscale: str = typer.Option(
        None,
        help="also the day under a reactive autoscaler, METRIC:TARGET per replica: concurrency (requests in "
        "flight), queue (waiting requests) or kv (KV-cache use, 0..1), e.g. concurrency:16; concurrency:auto "
        "aims at what the peak hour's sized replicas hold",
    ),
    interval_s: float = typer.Option(15.0, help="the autoscaler reads its metric this often, s"),
    window_s: float = typer.Option(
        None,
        help="seconds of each hour the autoscaled day simulates, the rest counted at the window's second half "
        "(default: the whole day in one piece up to 300,000 requests, else 600; 3600: in one piece)",
    ),
    max_replicas: int = typer.Option(256, help="the most replicas an hour may size or the autoscaler start"),
    requests: int = typer.Option(1500, help="requests each hour's sizing simulates"),
    prices: Path = typer.Option(Path("data/prices.yaml"), help="price book YAML"),
    jobs: int = typer.Option(
        0, help="processes for the autoscaled days, one per start-up time (0: one per CPU)"
    ),
    pricing: str = typer.Option("on_demand", help="on_demand | reserved | reserved_3y | owned"),
    as_json: bool = typer.Option(False, "--json", help="the day as JSON on stdout"),
) -> None:
    """Size an LLM fleet hour by hour over a diurnal day; device-hours, cost and SLO misses through the
    up-ramps at each engine start-up time."""
    try:
        sc = load_scenario(scenario)
        req = DayRequest(
            sc, load_run(run), precision, startup_s, cooldown_s, ramp_s, router, max_num_seqs,
            max_num_batched_tokens, block_size, kv_blocks, prefix_caching, spares, autoscale, interval_s, window_s,
            max_replicas, requests, pricing, jobs if jobs > 0 else (os.cpu_count() or 1),
        )  # fmt: skip
        plan = answer_day(req, load_prices(prices))
    except (
        ScenarioError,
        RunFileError,
        StepModelError,
        EngineError,
        RouterError,
        DayError,
        PriceError,
        ValueError,
    ) as exc:
        raise fail(str(exc)) from None
    if as_json:
        write_json(plan.model_dump(mode="json"))
        return
    _print(plan)


def _print(d: LlmDay) -> None:
    out.print(escape(f"{d.scenario}: {'; '.join(d.slos)}; routed {d.router}"), highlight=False)
    t = Table(title="replicas by hour (sized at each hour's rate; running with the spares)")
    for col in ("hour", "req/s", "sized", "running"):
        t.add_column(col)
    for a in d.autoscaled:
        t.add_column(f"autoscaled, start-up {a.policy.startup_s:g} s: mean replicas (window misses)")
    for i, h in enumerate(d.hours):
        auto = [
            f"{a.hours[i].mean_replicas:.2f} ({a.hours[i].missed:,} of {a.hours[i].requests:,})"
            for a in d.autoscaled
        ]
        t.add_row(f"{h.hour:02d}", f"{h.rate_rps:.3g}", str(h.replicas), str(h.running), *auto)
    out.print(t)
    s = Table(title="the day by engine start-up time: reactive scale-up, or the new replicas pre-warmed")
    for col in (
        "start-up s",
        "reactive: device-hours a day",
        f"$ a month ({DAYS_PER_MONTH:g} days)",
        "requests over an SLO in the up-ramps",
        "pre-warmed: device-hours a day",
        "$ a month",
    ):
        s.add_column(col)

    def month(usd: float | None) -> str:
        return "not priced" if usd is None else f"${usd * DAYS_PER_MONTH:,.0f}"

    for key, hours in d.device_hours_per_day.items():
        missed, total, ramps = d.ramp_misses(key)
        s.add_row(
            key, f"{hours:,.2f}", month(d.usd_per_day.get(key)),
            f"{missed:,} of {total:,} ({missed / total:.1%}) in {ramps} ramp(s)" if total else "no up-ramp",
            f"{d.prewarmed_device_hours_per_day[key]:,.2f}", month(d.prewarmed_usd_per_day.get(key)),
        )  # fmt: skip
    out.print(s)
    if d.autoscaled:
        _print_autoscaled(d, month)
    for n in d.notes:
        out.print(f"note: {escape(n)}", highlight=False, soft_wrap=True)


def _print_autoscaled(d: LlmDay, month: Callable[[float | None], str]) -> None:
    a0 = d.autoscaled[0]
    out.print(escape(f"autoscaler: {a0.policy.label()}"), highlight=False)
    s = Table(
        title="the day under the autoscaler, by engine start-up time (against the hourly schedule above)"
    )
    for col in (
        "start-up s",
        "device-hours a day",
        f"$ a month ({DAYS_PER_MONTH:g} days)",
        "requests over an SLO a day",
        "scale-ups / downs",
    ):
        s.add_column(col)
    for a in d.autoscaled:
        s.add_row(
            f"{a.policy.startup_s:g}", f"{a.device_hours_per_day or 0.0:,.2f}", month(a.usd_per_day),
            f"{a.missed_per_day:,.0f} of {a.requests_per_day:,.0f} ({a.missed_share:.2%})", f"{a.scale_ups} / {a.scale_downs}",
        )  # fmt: skip
    out.print(s)
