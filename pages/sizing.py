"""Fleet sizing: choose evidence, precisions, batching grid and pricing; see replicas, cost and energy."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import (
    catalog,
    current_scenario,
    plan_for,
    plot_label,
    profile_paths,
    save_plan_form,
    session_price_form,
    shipped_scenarios,
    source_badge,
)
from pages.llm_day import show_llm_day
from pages.llm_sizing import show_llm_sizing
from planner.fleet.escape import md_escape as esc
from planner.fleet.options import DEFAULT_MAX_BATCHES, DEFAULT_MAX_DELAYS_MS
from planner.fleet.plan import Plan
from planner.fleet.prices import PRICINGS
from planner.fleet.ranking import RANK_BY
from planner.traffic.scenario import parse_scenario

st.title("Fleet sizing")
shipped = shipped_scenarios()
edited = current_scenario()
choices = ([f"from the Scenario page: {edited.name}"] if edited else []) + list(shipped)
if edited is not None:  # a new edit on the Scenario page is what the user wants sized next
    seen = json.dumps(edited.model_dump(mode="json"), sort_keys=True)
    if st.session_state.get("sz_edit_seen") != seen:
        st.session_state["sz_edit_seen"] = seen
        st.session_state["sz_scenario"] = choices[0]
if st.session_state.get("sz_scenario") not in choices:  # a kept choice that no longer exists
    st.session_state.pop("sz_scenario", None)
pick = st.selectbox("Scenario", choices, key="sz_scenario", persist_state="session")
scenario = edited if edited and pick.startswith("from the Scenario page: ") else shipped[pick]
st.caption(
    esc(f"{scenario.description} SLOs: " + ("; ".join(s.label() for s in scenario.slo) or "none"), 4000)
)

cat = catalog()
if scenario.llm is not None:  # generative requests: sized on LLM runs by the engine model
    show_llm_sizing(scenario, cat)
    show_llm_day(scenario, cat)
    st.stop()
# one question per model: the planner buys devices for one workload; other models' runs never enter its answer
models = sorted({s.run.workload.name for s in cat.runs if not s.run.is_llm})
llm_runs = [s for s in cat.runs if s.run.is_llm]
if llm_runs:
    st.caption(
        f"{len(llm_runs)} LLM run(s) (prefill/decode steps) are sized on a generative scenario "
        "(one with an llm block, e.g. tiny-chat)."
    )
if st.session_state.get("sz_model") not in models:
    st.session_state.pop("sz_model", None)
model = (
    st.selectbox("Model to plan for (its measured runs)", models, key="sz_model", persist_state="session")
    if models
    else None
)
mine = [s for s in cat.runs if s.run.workload.name == model]
run_labels = {
    f"{s.run.short_id()} · {s.run.stack.device_name} · {', '.join(s.precisions)}": str(s.path) for s in mine
}
prof_labels = {p.rsplit("/", 1)[-1]: p for p in profile_paths()}
precisions = sorted({p for s in mine for p in s.precisions})
with st.form("sizing"):
    c1, c2 = st.columns(2)
    runs = c1.multiselect(
        "Measured runs",
        list(run_labels),
        default=list(run_labels),
        key=f"sz_runs_{model}",
        persist_state="session",
    )  # per model: a switch starts from all of its runs
    profiles = c2.multiselect(
        "Assumed profiles (what-if)",
        list(prof_labels),
        default=list(prof_labels),
        key="sz_profiles",
        persist_state="session",
    )
    c1, c2, c3 = st.columns(3)
    prec = c1.multiselect(
        "Precisions (empty: every ok one)", precisions, key="sz_prec", persist_state="session"
    )
    batches = c2.multiselect(
        f"max_batch grid (empty: {', '.join(map(str, DEFAULT_MAX_BATCHES))} and the largest measured, as the CLI)",
        [1, 2, 4, 8, 16, 32, 64, 128],
        key="sz_batch",
        persist_state="session",
    )
    delays = c3.multiselect(
        f"max_delay grid, ms (empty: {', '.join(f'{d:g}' for d in DEFAULT_MAX_DELAYS_MS)}, as the CLI)",
        [0.0, 1.0, 2.0, 5.0, 10.0, 20.0],
        key="sz_delay",
        persist_state="session",
    )
    c1, c2, c3, c4, c5 = st.columns(5)
    pricing = c1.selectbox("Pricing", PRICINGS, key="sz_pricing", persist_state="session")
    rank_by = c2.selectbox("Rank by", RANK_BY, key="sz_rank", persist_state="session")
    spares = int(c3.number_input("Spare replicas (N+k)", 0, 100, 0, key="sz_spares", persist_state="session"))
    headroom = c4.number_input(
        "Headroom fraction", 0.0, 5.0, 0.0, step=0.05, key="sz_headroom", persist_state="session"
    )
    requests = int(
        c5.number_input(
            "Arrivals per simulation",
            1000,
            500_000,
            30_000,
            step=5000,
            key="sz_requests",
            persist_state="session",
        )
    )
    scale = st.number_input(
        "Service-time scale (an assumption: 1 = as measured; e.g. a live validation's live/isolated ratio)",
        0.1,
        10.0,
        1.0,
        step=0.05,
        key="sz_scale",
        persist_state="session",
    )
    early = st.checkbox(
        "Stop each simulation once its SLO verdict is settled (as the CLI; off: --full-length)",
        True,
        key="sz_early",
        persist_state="session",
    )
    submitted = st.form_submit_button("Size the fleet", type="primary")

current: dict[str, Any] = {
    "scenario": scenario.model_dump(mode="json"),
    "runs": sorted(run_labels[r] for r in runs),
    "profiles": sorted(prof_labels[p] for p in profiles),
    "precisions": sorted(prec),
    "max_batches": sorted(batches),  # empty: the planner's default grid, the one the CLI uses
    "max_delays_ms": sorted(delays),
    "pricing": pricing,
    "rank_by": rank_by,
    "spares": spares,
    "headroom": headroom,
    "requests": requests,
    "service_scale": scale,
    "early_stop": early,
    "session_prices": st.session_state.get("session_prices", {}),
}
if submitted:
    st.session_state["plan_params"] = current
if "plan_params" not in st.session_state:
    st.info(
        "Choose the options and press **Size the fleet**: each option's fewest replicas meeting every SLO."
    )
    st.stop()
params = st.session_state["plan_params"]
if {k: v for k, v in params.items() if k != "session_prices"} != {
    k: v for k, v in current.items() if k != "session_prices"
}:
    st.warning(
        esc(
            f"The answer below is for the question last sized (scenario {params['scenario']['name']}, "
            f"{len(params['runs'])} run(s), {len(params['profiles'])} profile(s), pricing {params['pricing']}), not "
            "for the form's current choices: press **Size the fleet** to answer those.",
            1000,
        )
    )
try:
    plan: Plan = plan_for(params)
except ValueError as exc:
    st.error(esc(exc, 2000))
    st.stop()
st.session_state["plan"] = plan.model_dump(mode="json")
st.session_state["last_plan_kind"] = "batch"  # the explorer and the report follow the latest sizing
# the pages that read the plan take the parameters that made it (a sizing left half-way must not mix them)
st.session_state["planned_params"] = params

st.subheader("Answer")
for line in plan.answer.splitlines():
    st.markdown(
        ("- :orange[ASSUMED] " if line.startswith("ASSUMED") else "- ")
        + esc(line.removeprefix("ASSUMED "), 2000)
    )
if plan.not_comparable:
    st.warning(esc(plan.not_comparable, 4000))
for w in sorted({w for o in plan.options for w in o.warnings}):  # the CLI's words, where the numbers are
    st.warning(f"Warning: {esc(w, 2000)}")
for why in dict.fromkeys(o.not_priced for o in plan.options if o.not_priced):
    st.warning(f"{esc(why, 600)}: sized, not costed; add the device to the price book")
session_price_form(
    sorted({o.device for o in plan.options if o.not_priced and o.source == "measured"}), "plan_params"
)
save_plan_form(
    parse_scenario(params["scenario"], "scenario"),
    plan,
    {k: v for k, v in params.items() if k != "scenario"},
    "batch",
)
st.caption(
    f"Sized at: {esc(plan.sized_at, 2000)}. Pricing {plan.pricing}, redundancy {esc(plan.redundancy)}; "
    f"{plan.simulations} simulations ({plan.simulations_reused} reused), {plan.simulations_stopped_early} stopped early: {esc(plan.stopping_rule, 2000)}."
)
if plan.service_scale != 1.0:
    st.warning(
        f"Assumption: every service time multiplied by {plan.service_scale:g} (not part of the evidence)."
    )

rows = []
for o in plan.options:
    rows.append(
        {
            "group": ("ASSUMED: " if o.source == "assumed" else "") + o.group.split(" (")[0],
            "rank": o.rank,
            "source": o.source,
            "evidence": ", ".join(e.removeprefix("sha256:")[:12] for e in o.evidence_ids),
            "precision": o.precision or "-",
            "max_batch": o.max_batch,
            "max_delay_ms": o.max_delay_ms,
            "replicas": o.replicas_deployed,
            "sized": o.replicas,
            "optimistic": o.replicas_optimistic,
            "meets SLO": o.meets_slo,
            "p99 ms": o.latency_ms.p99 if o.latency_ms else None,
            "monthly $": o.monthly_cost_usd,
            "$ per 1k requests": o.cost_per_1k_requests_usd,
            "$ per 1M tokens": o.cost_per_1m_tokens_usd,
            "units per J": o.units_per_joule,
            "utilization at peak": o.utilization_peak,
            "why not": o.reason or "",
            "label": o.label,
            "option": plot_label(o),
        }
    )
table = pd.DataFrame(rows)
st.session_state["plan_table_csv"] = table.to_csv(index=False)
# the question's key columns first, the configuration pinned: at 1400 px cost and verdict are on screen
KEY_COLUMNS = [
    "precision",
    "max_batch",
    "max_delay_ms",
    "replicas",
    "meets SLO",
    "monthly $",
    "$ per 1k requests",
]
st.dataframe(
    table.drop(columns=["label", "option"]),
    hide_index=True,
    width="stretch",
    column_order=KEY_COLUMNS
    + [c for c in table.columns if c not in KEY_COLUMNS and c not in ("label", "option")],
    column_config={
        "precision": st.column_config.TextColumn(pinned=True),
        "max_batch": st.column_config.NumberColumn(pinned=True),
        "max_delay_ms": st.column_config.NumberColumn(pinned=True),
        "monthly $": st.column_config.NumberColumn(format="dollar"),
        # per-request money needs significant digits, not cents: $0.000933, never "$0.00"
        "$ per 1k requests": st.column_config.NumberColumn(format="$%.3g"),
        "$ per 1M tokens": st.column_config.NumberColumn(format="$%.3g"),
        "units per J": st.column_config.NumberColumn(format="%.3g"),
        "utilization at peak": st.column_config.NumberColumn(format="percent"),
    },
)

ok = table[table["meets SLO"] & table["monthly $"].notna()].copy()
groups = list(dict.fromkeys(ok["group"]))
if len(groups) > 1:  # charts compare options within one comparability group, never across
    shown_group = st.radio(
        "Charts for", groups, horizontal=True, key="sz_chart_group", persist_state="session"
    )
    ok = ok[ok["group"] == shown_group]
if len(ok):
    best = ok.sort_values("monthly $").head(15)
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        px.bar(
            best,
            x="monthly $",
            y="option",
            color="source",
            orientation="h",
            title="Monthly cost (cost): the cheapest 15 options meeting the SLOs",
        ),
        key="cost_bar",
    )
    c2.plotly_chart(
        px.scatter(
            ok,
            x="p99 ms",
            y="monthly $",
            color="group",
            symbol="source",
            hover_name="option",
            title="p99 at the sized count vs monthly cost",
        ),
        key="cost_scatter",
    )
    eff = ok[ok["units per J"].notna()]
    if len(eff):
        st.plotly_chart(
            px.bar(
                eff.sort_values("units per J", ascending=False).head(15),
                x="units per J",
                y="option",
                color="source",
                orientation="h",
                title="Units per joule (efficiency; device energy)",
            ),
            key="eff_bar",
        )
    else:
        st.info(
            "Units per joule: no option's evidence has a power measurement, so none is shown (never estimated)."
        )
hourly = [o for o in plan.options if o.rank == 1 and o.hourly]
if hourly:
    day = pd.DataFrame(
        [
            {"hour": h.hour, "replicas": h.replicas_deployed, "option": plot_label(o), "source": o.source}
            for o in hourly
            for h in o.hourly
        ]
    )
    st.plotly_chart(
        px.line(
            day,
            x="hour",
            y="replicas",
            color="option",
            markers=True,
            line_shape="hv",
            title="Devices over the day (best option per group)",
        ),
        key="day",
    )
    for o in hourly:
        st.caption(
            f"{source_badge(o.source)} {esc(o.label)}: always-on {o.replicas_deployed} devices; autoscaled "
            f"{o.device_hours_per_day_autoscaled:g} device-hours/day"
        )
for s in plan.skipped:
    st.caption(f"Left out: {esc(s, 2000)}")
