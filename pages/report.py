"""Report: download the audit report of the current plan (markdown or HTML) and its answer table (CSV)."""

from __future__ import annotations

import json

import streamlit as st

from pages.common import price_book, sensitivity_for, validations_dir
from planner.fleet.plan import Plan
from planner.fleet.report import evidence_for, render_html, render_markdown

st.title("Audit report")
if "plan" not in st.session_state:
    st.info("Size a fleet first: the report documents the current plan.")
    st.page_link("pages/sizing.py", label="Go to Fleet sizing", icon=":material/calculate:")
    st.stop()
plan = Plan.model_validate(st.session_state["plan"])
params = st.session_state["planned_params"]
book = price_book(st.session_state["planned_params"])
evidence = evidence_for(params["runs"], validations_dir())
rows = None
if st.toggle(
    "Include sensitivity tables (re-sizes the best option of each group: growth x0.5..x3, SLO x0.5..x1.5)",
    key="rep_sens",
):
    rows = sensitivity_for(params)
md = render_markdown(plan, book, rows, evidence)
c1, c2, c3, c4 = st.columns(4)
c1.download_button("Report (markdown)", md, file_name=f"plan-{plan.scenario}.md", mime="text/markdown")
c2.download_button(
    "Report (HTML)",
    render_html(md, f"Fleet sizing: {plan.scenario}"),
    file_name=f"plan-{plan.scenario}.html",
    mime="text/html",
)
c3.download_button(
    "Answer table (CSV)",
    st.session_state.get("plan_table_csv", ""),
    file_name=f"plan-{plan.scenario}.csv",
    mime="text/csv",
)
c4.download_button(
    "Plan (JSON, as `fleetwise size --json`)",
    json.dumps(st.session_state["plan"], indent=1),
    file_name=f"plan-{plan.scenario}.json",
    mime="application/json",
)
st.markdown(md)
