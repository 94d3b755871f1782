"""Compare plans: saved plans side by side (H100 vs H200, on-demand vs reserved vs owned, 1-3 year totals)."""

from __future__ import annotations

import html

import pandas as pd
import plotly.express as px
import streamlit as st

from pages.common import plans_dir
from planner.fleet.escape import md_escape as esc
from planner.fleet.report import money
from planner.question.saved import compare_plans, scan_plans

st.title("Compare plans")
found, broken = scan_plans(plans_dir())
for path, why in broken:
    st.warning(esc(f"{path.name} is not read: {why}", 1000))
if len(found) < 2:
    st.info(
        "Save at least two plans (the **Save plan** form under an answer on Fleet sizing, or `fleetwise size "
        "--save-plan data/plans`), then compare them here."
    )
    st.stop()
labels = {f"{p.name} · {p.scenario.name} · {p.pricing} · {p.saved_at:%Y-%m-%d %H:%M}": p for _, p in found}
chosen = st.multiselect(
    "Plans (two or more)", list(labels), default=list(labels)[:2], key="cp_plans", persist_state="session"
)
years = st.multiselect(
    "Total cost over years", [1, 2, 3, 4, 5], default=[1, 3], key="cp_years", persist_state="session"
)
if len(chosen) < 2:
    st.info("Pick at least two plans.")
    st.stop()
c = compare_plans([labels[k] for k in chosen], tuple(sorted(years)) or (1,))
for note in c.notes:  # the totals rule is how to read the table; the rest are cautions
    (st.caption if note.startswith("totals") else st.warning)(esc(note, 2000))
rows = []
for p in c.plans:
    r = p.row
    rows.append(
        {
            "plan": p.name,
            "scenario": p.scenario,
            "pricing": p.pricing,
            "evidence": "-" if r is None else ("ASSUMED" if r.source == "assumed" else r.source),
            "device x replica": "-" if r is None else f"{r.device} x {r.replica}",
            "replicas": r.replicas if r else None,
            "devices": r.devices if r else None,
            "monthly $": money(r.monthly_usd if r else None),
            **{f"{y}-year total $": money(v) for y, v in p.totals_usd.items()},
            "$/1M tokens": money(r.usd_per_1m_tokens if r else None),
            "tokens/J": r.tokens_per_joule if r else None,
            "worst SLO (observed / threshold)": p.worst_margin,
        }
    )
st.dataframe(pd.DataFrame(rows), hide_index=True)
bars = pd.DataFrame(
    [
        {"plan": html.escape(p.name), "years": f"{y} year{'s' if y > 1 else ''}", "total $": v}
        for p in c.plans
        for y, v in p.totals_usd.items()
        if v is not None
    ],
    columns=["plan", "years", "total $"],
)
if not bars.empty:
    st.plotly_chart(
        px.bar(
            bars, x="plan", y="total $", color="years", barmode="group", title="Total cost over the years"
        ),
        key="cp_totals",
    )
for p in c.plans:
    st.caption(esc(f"{p.name}: {p.answer}", 2000))
