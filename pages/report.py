"""Report: download the audit report of the current plan (markdown or HTML) and its answer table (CSV)."""

from __future__ import annotations

import json

import streamlit as st

from pages.common import price_book, sensitivity_for, validations_dir
from pages.llm_sizing import llm_plan_for
from planner.evidence.bench_import import import_file
from planner.fleet.plan import Plan
from planner.fleet.report import evidence_for, render_html, render_markdown
from planner.llm.report import llm_validations_for, render_llm_markdown
from planner.llm.roofline import load_llm_profile
from planner.llm.sources import Source
from planner.traffic.scenario import parse_scenario
from planner.workers import load_run_cached


def downloads(md: str, title: str, stem: str, plan_json: str, table_csv: str | None = None) -> None:
    """The report as markdown and HTML, the answer table (batch plans) and the plan as `fleetwise size --json`."""
    files = [
        ("Report (markdown)", md, "md", "text/markdown"),
        ("Report (HTML)", render_html(md, title), "html", "text/html"),
        *([("Answer table (CSV)", table_csv, "csv", "text/csv")] if table_csv is not None else []),
        ("Plan (JSON, as `fleetwise size --json`)", plan_json, "json", "application/json"),
    ]
    for col, (label, data, ext, mime) in zip(st.columns(len(files)), files, strict=True):
        col.download_button(label, data, file_name=f"{stem}.{ext}", mime=mime)


st.title("Audit report")
if st.session_state.get("last_plan_kind") == "llm" and "llm_params" in st.session_state:
    llm_params = st.session_state["llm_params"]
    llm_plan = llm_plan_for(llm_params)
    runs = {r.id: r for r in map(load_run_cached, llm_params["runs"])}
    cited: dict[str, Source] = {
        **runs,
        **{p.id: p for p in map(load_llm_profile, llm_params.get("profiles", []))},
    }
    llm_md = render_llm_markdown(
        llm_plan,
        parse_scenario(llm_params["scenario"], "scenario"),
        price_book(llm_params),
        cited,
        llm_validations_for(list(runs), validations_dir()),
        {b.id: b for b in map(import_file, llm_params.get("benchmarks", []))},
    )
    downloads(
        llm_md,
        f"LLM fleet sizing: {llm_plan.scenario}",
        f"llm-plan-{llm_plan.scenario}",
        llm_plan.model_dump_json(indent=1),
    )
    st.markdown(llm_md)
    st.stop()
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
downloads(
    md,
    f"Fleet sizing: {plan.scenario}",
    f"plan-{plan.scenario}",
    json.dumps(st.session_state["plan"], indent=1),
    st.session_state.get("plan_table_csv", ""),
)
st.markdown(md)
