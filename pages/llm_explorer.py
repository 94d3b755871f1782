"""The SLO explorer for a generative plan: TTFT and TPOT sliders over each option's simulated replica ladder,
what meeting both costs, and why an option cannot. Not a page of its own: the SLO explorer shows it when the
latest sizing was of a generative scenario."""

from __future__ import annotations

import html
import json
import math
from typing import Any, cast

import pandas as pd
import streamlit as st

from pages.common import EXECUTOR, JOBS, cached, line, price_book, prices_digest, run_ids_for, scatter
from pages.llm_sizing import llm_plan_for
from planner.evidence.bench_import import import_file
from planner.fleet.escape import md_escape as esc
from planner.fleet.prices import HOURS_PER_MONTH, PriceBook, PriceError
from planner.fleet.report import money
from planner.fleet.tradeoff import PERCENTILE_KEYS
from planner.llm.bench_curve import curve_points, replicas_at
from planner.llm.bench_sizing import BenchSized
from planner.llm.sizing import LlmSized
from planner.llm.tradeoff import LadderTask, LlmLadder, ladder_task, replicas_for, rung_for, why_not
from planner.traffic.scenario import Scenario, Slo, parse_scenario
from planner.workers import in_workers

GRID_POINTS = 200


def _ladders(params: dict[str, Any], sc: Scenario, options: list[LlmSized]) -> list[LlmLadder]:
    key = (
        "llm_ladders",
        json.dumps(params, sort_keys=True),
        *run_ids_for(params["runs"]),
        prices_digest(),
        *(o.label for o in options),
    )
    tasks = [LadderTask(sc, o) for o in options]
    return cast(
        list[LlmLadder],
        cached(key, lambda p: in_workers(ladder_task, tasks, JOBS, p, EXECUTOR), "Simulating replica counts"),
    )


def _slider(
    col: Any, metric: str, pct: float, values: list[float], own: list[float], prefix: str = "llm_slo"
) -> float:
    """A threshold slider whose range always holds the scenario's own objective for the metric, starting there."""
    lo, hi = min([*values, *own]), max([*values, *own])
    start = own[0] if own else (lo * hi) ** 0.5
    return float(
        col.slider(
            f"p{pct:g} {metric.upper()} threshold (ms)",
            min_value=round(lo * 0.8, 2),
            max_value=round(hi * 1.5, 2) + 0.01,
            value=round(start, 2),
            key=f"{prefix}_{metric}",
        )
    )


def _curve(
    ladders: list[LlmLadder], pct: float, metric: str, lo: float, hi: float, other: float
) -> pd.DataFrame:
    """Fewest replicas per option as one threshold sweeps its range with the other held at the slider's value."""
    rows = []
    for i in range(GRID_POINTS + 1):
        t = lo * (hi / lo) ** (i / GRID_POINTS)
        ttft, tpot = (t, other) if metric == "ttft" else (other, t)
        for lad in ladders:
            n = replicas_for(lad, pct, ttft, tpot)
            if n is not None:
                rows.append({"option": html.escape(lad.label), "threshold_ms": t, "replicas": n})
    return pd.DataFrame(rows, columns=["option", "threshold_ms", "replicas"])


def show_llm_explorer(params: dict[str, Any]) -> None:
    """Options of the latest generative plan, their ladders, two sliders and the answer at those thresholds."""
    sc = parse_scenario(params["scenario"], "scenario")
    plan = llm_plan_for(params)
    st.caption(
        esc(
            f"Generative scenario {plan.scenario}; SLOs {'; '.join(plan.slos)}. Each option's replica counts are "
            "simulated from the fewest with stable queues until p99 TTFT and TPOT stop improving.",
            4000,
        )
    )
    sized = [o for o in plan.options if o.replicas is not None]
    curves = [x for x in plan.from_benchmarks if x.curve]
    if not sized and not curves:
        st.warning("No option of this plan met the SLOs at any count: nothing to explore (see Fleet sizing).")
        return
    if sized:
        _simulated(params, sc, sized)
    if curves:
        _benchmark_curves(params, curves)


def _simulated(params: dict[str, Any], sc: Scenario, sized: list[LlmSized]) -> None:
    """The simulated options' ladders under two sliders."""
    by_label = {o.label: o for o in sized}
    ranked = sorted(sized, key=lambda o: (o.monthly_cost_usd is None, o.monthly_cost_usd or 0.0, o.replicas))
    chosen = st.multiselect(
        "Options",
        list(by_label),
        default=[o.label for o in ranked[:3]],
        key="llm_slo_opts",
        persist_state="session",
    )
    if not chosen:
        return
    ladders = _ladders(params, sc, [by_label[c] for c in chosen])
    c1, c2, c3 = st.columns(3)
    pct = c1.select_slider(
        "Percentile",
        options=list(PERCENTILE_KEYS),
        value=99.0,
        format_func=lambda p: f"p{p:g}",
        key="llm_slo_pct",
        persist_state="session",
    )
    field = PERCENTILE_KEYS[pct]
    thresholds = {}
    for col, metric in ((c2, "ttft"), (c3, "tpot")):
        vals = [float(getattr(getattr(r, f"{metric}_ms"), field)) for lad in ladders for r in lad.rungs]
        own = [s.threshold_ms for s in sc.slo if s.metric == metric and s.percentile == pct]
        thresholds[metric] = _slider(col, metric, pct, vals or own or [1.0], own)
    ttft, tpot = thresholds["ttft"], thresholds["tpot"]
    rows = []
    for lad in ladders:
        rung = rung_for(lad, pct, ttft, tpot)
        n = None if rung is None else rung.replicas
        per = lad.monthly_per_replica_usd
        monthly = n * per if n is not None and per is not None else None
        rows.append(
            {
                "option": lad.label,
                "replicas": n,
                "prefill + decode": f"{rung.prefill_replicas} + {rung.decode_replicas}"
                if rung is not None and rung.prefill_replicas
                else "",
                "monthly $": money(monthly),
                "$/1M output, all-in": money(
                    monthly / lad.output_tokens_per_month * 1e6
                    if monthly and lad.output_tokens_per_month
                    else None
                ),
                "why not": "" if n is not None else why_not(lad, pct, ttft, tpot),
                "priced": "yes" if per is not None else "no: see Fleet sizing",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    c1, c2 = st.columns(2)
    for col, metric, other in ((c1, "ttft", tpot), (c2, "tpot", ttft)):
        vals = [float(getattr(getattr(r, f"{metric}_ms"), field)) for lad in ladders for r in lad.rungs]
        value = thresholds[metric]
        lo, hi = min([*vals, value]) * 0.8, max([*vals, value]) * 1.5
        held = "TPOT" if metric == "ttft" else "TTFT"
        fig = line(
            _curve(ladders, pct, metric, lo, hi, other),
            x="threshold_ms",
            y="replicas",
            color="option",
            line_shape="hv",
            log_x=True,
            title=f"Fewest replicas for p{pct:g} {metric.upper()} <= threshold ({held} at {other:.3g} ms)",
        )
        top = max((r.replicas for lad in ladders for r in lad.rungs), default=1)
        fig.update_yaxes(rangemode="tozero", dtick=max(1, math.ceil(top / 8)))  # whole replicas only
        fig.add_vline(x=value, line_dash="dash")
        col.plotly_chart(fig, key=f"llm_curve_{metric}")
    points = pd.DataFrame(
        [
            {
                "option": html.escape(lad.label),
                f"p{pct:g} TTFT ms": getattr(r.ttft_ms, field),
                f"p{pct:g} TPOT ms": getattr(r.tpot_ms, field),
                "replicas": f"{r.prefill_replicas}+{r.decode_replicas}"
                if r.prefill_replicas
                else str(r.replicas),
            }
            for lad in ladders
            for r in lad.rungs
        ]
    )
    fig = scatter(
        points,
        x=f"p{pct:g} TTFT ms",
        y=f"p{pct:g} TPOT ms",
        color="option",
        text="replicas",
        title="TTFT against TPOT at each simulated replica count (labels: replicas; prefill+decode when split)",
    )
    fig.add_vline(x=ttft, line_dash="dash")
    fig.add_hline(y=tpot, line_dash="dash")
    st.plotly_chart(fig, key="llm_tradeoff")
    for lad in ladders:
        st.caption(
            esc(
                f"{lad.label}: {lad.simulations} simulations; "
                + (f"queues grow at {lad.unstable_below} replicas; " if lad.unstable_below else "")
                + ("ladder ends where more replicas stop helping" if lad.plateau else "ladder capped"),
                2000,
            )
        )


def _benchmark_curves(params: dict[str, Any], sized: list[BenchSized]) -> None:
    """Benchmark plans: each curve's capacity at the sliders' thresholds, interpolated between its measured
    levels and never beyond them; nothing is simulated, so every threshold is answered at once."""
    st.subheader("From imported engine benchmarks")
    st.caption(
        "Each curve is the files of one engine, model and hardware: its capacity at the thresholds is "
        "interpolated between the levels the tool measured, never beyond the fastest; nothing is simulated."
    )
    found = {b.id: b for b in (import_file(p) for p in params.get("benchmarks", []))}
    curves = [(x, curve_points([found[i] for i in x.benchmark_ids if i in found])[0]) for x in sized]
    c1, c2, c3 = st.columns(3)
    pct = float(
        c1.select_slider(
            "Percentile",
            options=[50.0, 90.0, 95.0, 99.0],
            value=99.0,
            format_func=lambda p: f"p{p:g}",
            key="bench_slo_pct",
            persist_state="session",
        )
    )
    key = PERCENTILE_KEYS[pct]
    sc = parse_scenario(params["scenario"], "scenario")
    thresholds: dict[str, float] = {}
    for col, metric in ((c2, "ttft"), (c3, "tpot")):
        vals = [v for _, pts in curves for p in pts if (v := p.stats.get(metric, {}).get(key)) is not None]
        if vals:  # a metric no curve reports cannot be an objective here
            own = [s.threshold_ms for s in sc.slo if s.metric == metric and s.percentile == pct]
            thresholds[metric] = _slider(col, metric, pct, vals, own, prefix="bench_slo")
    if not thresholds:
        st.info(esc(f"The benchmarks report no TTFT or TPOT at p{pct:g}.", 200))
        return
    slos = [Slo(metric=m, percentile=pct, threshold_ms=t) for m, t in thresholds.items()]
    book = price_book(params)
    rows = []
    for x, pts in curves:
        n, cap = replicas_at(pts, x.offered_rps, slos)
        per_device = _device_hour(book, x.hardware, params["pricing"])
        monthly = (
            n * x.devices_per_replica * per_device * HOURS_PER_MONTH if n and per_device is not None else None
        )
        rows.append({
            "benchmark files": f"{x.tool} " + ", ".join(i.removeprefix("sha256:")[:12] for i in x.benchmark_ids),
            "hardware": x.hardware, "replica": x.replica, "req/s per replica": cap.rate_rps,
            "between levels": " and ".join(v for v in (cap.below, cap.above) if v), "replicas": n,
            "devices": n * x.devices_per_replica if n else None, "monthly $": money(monthly),
            "why not": cap.why or "",
        })  # fmt: skip
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    for metric, value in thresholds.items():
        others = {m: t for m, t in thresholds.items() if m != metric}
        vals = [v for _, pts in curves for p in pts if (v := p.stats.get(metric, {}).get(key)) is not None]
        lo, hi = min([*vals, value]) * 0.8, max([*vals, value]) * 1.5
        grid = []
        for i in range(GRID_POINTS + 1):
            t = lo * (hi / lo) ** (i / GRID_POINTS)
            at = [Slo(metric=m, percentile=pct, threshold_ms=v) for m, v in {**others, metric: t}.items()]
            for x, pts in curves:
                n, _ = replicas_at(pts, x.offered_rps, at)
                if n is not None:
                    grid.append(
                        {"curve": html.escape(f"{x.tool} {x.hardware}"), "threshold_ms": t, "replicas": n}
                    )
        fig = line(
            pd.DataFrame(grid, columns=["curve", "threshold_ms", "replicas"]), x="threshold_ms", y="replicas",
            color="curve", line_shape="hv", log_x=True,
            title=f"Fewest replicas for p{pct:g} {metric.upper()} <= threshold, from the benchmark curves",
        )  # fmt: skip
        fig.add_vline(x=value, line_dash="dash")
        st.plotly_chart(fig, key=f"bench_curve_{metric}")


def _device_hour(book: PriceBook, hardware: str, pricing: str) -> float | None:
    try:
        return book.for_hardware(hardware).price(pricing).usd_per_hour  # type: ignore[arg-type]
    except PriceError:
        return None
