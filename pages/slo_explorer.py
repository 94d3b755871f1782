"""SLO explorer: what each millisecond of latency objective costs, per option, and the cost-latency frontier."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages.common import ladders_for, line, plot_label, price_book, scatter, short_label, source_badge
from pages.llm_explorer import show_llm_explorer
from planner.fleet.cost import SECONDS_PER_MONTH
from planner.fleet.escape import md_escape as esc
from planner.fleet.plan import Plan
from planner.fleet.prices import HOURS_PER_MONTH, PriceError
from planner.fleet.tradeoff import PERCENTILE_KEYS, pareto, replicas_for
from planner.traffic.scenario import parse_scenario
from planner.workers import load_run_cached

st.title("SLO explorer")
if st.session_state.get("last_plan_kind") == "llm" and "llm_params" in st.session_state:
    show_llm_explorer(st.session_state["llm_params"])
    st.stop()
if "plan" not in st.session_state:
    st.info("Size a fleet first (Fleet sizing page): the explorer takes the best options of that plan.")
    st.page_link("pages/sizing.py", label="Go to Fleet sizing", icon=":material/calculate:")
    st.stop()
plan = Plan.model_validate(st.session_state["plan"])
scenario_slos = parse_scenario(st.session_state["planned_params"]["scenario"]).slo
params = st.session_state["planned_params"]
candidates = [o for o in plan.options if o.meets_slo and o.price_entry is not None]
for why in dict.fromkeys(o.not_priced for o in plan.options if o.not_priced):
    st.caption(f"Left out of the cost curves, {esc(why, 600)}")
labels = {short_label(o): o for o in candidates}
default = [k for k, o in labels.items() if o.rank is not None and o.rank <= 2][:6]
chosen = st.multiselect("Options", list(labels), default=default, key="slo_opts")
if not chosen:
    st.stop()
keys = tuple(sorted(labels[c].key for c in chosen))
ladders = ladders_for(params, keys)

book = price_book(st.session_state["planned_params"])
monthly: dict[str, float] = {}
for lad in ladders:
    o = next(x for x in candidates if x.key == lad.key)
    try:
        entry = book.by_key(o.price_entry or "")
        monthly[lad.key] = entry.price(plan.pricing).usd_per_hour * HOURS_PER_MONTH
    except PriceError as exc:
        st.error(esc(exc, 2000))
        st.stop()

c1, c2 = st.columns(2)
pct = c1.select_slider(
    "Latency percentile",
    options=list(PERCENTILE_KEYS),
    value=99.0,
    format_func=lambda p: f"p{p:g}",
    key="slo_pct",
)
field = PERCENTILE_KEYS[pct]
values = [getattr(r.latency_ms, field) for lad in ladders for r in lad.rungs]
own = [s.threshold_ms for s in scenario_slos if s.percentile == pct]
# the range always holds the scenario's own objectives, so its SLO can be read, never silently clipped
lo, hi = float(min([*values, *own])), float(max([*values, *own]))
# start at the scenario's own objective for this percentile, else halfway (geometrically) along the ladders
slo_ms = own[0] if own else (lo * hi) ** 0.5
threshold = c2.slider(
    "Threshold (ms)",
    min_value=round(lo * 0.9, 2),
    max_value=round(hi * 1.5, 2) + 0.01,
    value=round(slo_ms, 2),
    key="slo_ms",
)

grid = sorted({round(lo * 0.9 * (hi * 1.5 / (lo * 0.9)) ** (i / 300), 4) for i in range(301)} | {threshold})
curve_rows, now_rows, points = [], [], []
for lad in ladders:
    option = next(x for x in candidates if x.key == lad.key)
    name, legend = short_label(option), plot_label(option)
    per_replica = monthly[lad.key]
    requests_month = lad.rate_rps * SECONDS_PER_MONTH
    for t in grid:
        n = replicas_for(lad, pct, t)
        if n is not None:
            curve_rows.append(
                {
                    "option": legend,
                    "threshold_ms": t,
                    "monthly $": n * per_replica,
                    "$ per 1k requests": n * per_replica / requests_month * 1000,
                }
            )
    n = replicas_for(lad, pct, threshold)
    best = min(lad.rungs, key=lambda r: getattr(r.latency_ms, field))
    why = (
        ""
        if n is not None
        else f"misses by {getattr(best.latency_ms, field) - threshold:.3g} ms: the best p{pct:g} simulated is "
        f"{getattr(best.latency_ms, field):.3g} ms ({best.replicas} replicas; more did not help)"
    )
    now_rows.append(
        {
            "option": name,
            "source": lad.source,
            "replicas": n,
            "monthly $": None if n is None else n * per_replica,
            "$ per 1k requests": None if n is None else n * per_replica / requests_month * 1000,
            "why not": why,
        }
    )
    points += [
        (getattr(r.latency_ms, field), r.replicas * per_replica, f"{legend} x{r.replicas}") for r in lad.rungs
    ]

st.caption(
    f"Peak load of {esc(plan.scenario)} ({ladders[0].rate_rps:.4g} requests/s); each option's replica counts "
    f"were simulated from the stability bound up until p99 stopped improving. Pricing {plan.pricing}."
)
st.dataframe(
    pd.DataFrame(now_rows),
    hide_index=True,
    width="stretch",
    column_config={
        "monthly $": st.column_config.NumberColumn(format="dollar"),
        "$ per 1k requests": st.column_config.NumberColumn(format="$%.3g"),
    },
)
curves = pd.DataFrame(curve_rows)
c1, c2 = st.columns(2)
for col, metric, key in ((c1, "monthly $", "min_cost"), (c2, "$ per 1k requests", "per_req")):
    fig = line(
        curves,
        x="threshold_ms",
        log_x=True,
        y=metric,
        color="option",
        line_shape="hv",
        title=f"Minimum {metric} to meet p{pct:g} latency <= threshold",
    )
    fig.add_vline(x=threshold, line_dash="dash")
    col.plotly_chart(fig, key=key)
front = pareto(points)
allp = pd.DataFrame(points, columns=["latency_ms", "monthly $", "config"])
fig = scatter(
    allp,
    x="latency_ms",
    y="monthly $",
    hover_name="config",
    opacity=0.5,
    log_x=True,
    title=f"Latency-cost frontier across options (p{pct:g} at each simulated count)",
)
fig.add_trace(
    go.Scatter(
        x=[p[0] for p in front],
        y=[p[1] for p in front],
        mode="lines+markers",
        name="frontier",
        text=[p[2] for p in front],
        line_shape="hv",
    )
)
fig.add_vline(x=threshold, line_dash="dash")
st.plotly_chart(fig, key="pareto")
for lad in ladders:
    o = next(x for x in candidates if x.key == lad.key)
    ev = ", ".join(
        f"run {load_run_cached(p).short_id()}"
        for p in params["runs"]
        if load_run_cached(p).id in o.evidence_ids
    )
    st.caption(
        f"{source_badge(lad.source)} {esc(lad.label)}: evidence {esc(ev or ', '.join(o.evidence_ids))}; "
        f"{lad.simulations} simulations"
    )
