"""Compare runs: the comparability check first, then throughput, latency and energy curves overlaid."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from pages.common import catalog, line
from planner.evidence.catalog import run_curves
from planner.evidence.compare import compare_runs, p_value_text
from planner.fleet.escape import md_escape as esc

st.title("Compare runs")
cat = catalog()
labels = {f"{s.run.short_id()} · {s.run.workload.name} · {s.run.stack.device_name}": s.run for s in cat.runs}
batch_first = [k for k, r in labels.items() if not r.is_llm] + [k for k, r in labels.items() if r.is_llm]
chosen = st.multiselect("Runs (two or more)", list(labels), default=batch_first[:2], key="cmp_runs")
if len(chosen) < 2:
    st.info("Pick at least two runs.")
    st.stop()
runs = [labels[c] for c in chosen]
base = runs[0]
st.subheader("Comparability (against the first run)")
comparable_all = True
for other in runs[1:]:
    c = compare_runs(base, other)
    if c.comparable:
        st.success(f"{base.short_id()} and {other.short_id()}: comparable (same workload and methodology)")
    else:
        comparable_all = False
        st.error(
            f"{base.short_id()} vs {other.short_id()}: NOT comparable; fields that differ: "
            + esc("; ".join(f"{d.field} ({d.a} vs {d.b})" for d in c.differences), 4000)
        )
    if c.context:
        st.caption(
            "Stack differences (what the comparison is about): "
            + esc("; ".join(f"{d.field}: {d.a} vs {d.b}" for d in c.context), 4000)
        )
    if c.comparable and c.points:
        table = pd.DataFrame([{**p.model_dump(), "p_value": p_value_text(p.p_value)} for p in c.points])
        st.dataframe(table, hide_index=True)
        st.caption(esc(c.test) + f"; alpha {c.alpha:g}")

frames = []
for r in runs:
    df = run_curves(r)
    df = df[(df.status == "ok") & df.phase.isna()].copy()  # LLM steps are not curves over batch size
    df["run"] = html.escape(r.short_id() + " " + r.workload.name)  # plotly legends read a subset of HTML
    frames.append(df)
if any(r.is_llm for r in runs):
    st.caption("LLM runs are compared in the table above; their prefill/decode curves are on the Runs page.")
all_ = pd.concat(frames)
all_["series"] = all_.run + " " + all_.precision
if not comparable_all:
    st.warning(
        "Curves of non-comparable runs are shown side by side for reference only, not as a comparison."
    )
tput = "units_per_s" if all_.units_per_s.notna().all() else "items_per_s"
c1, c2 = st.columns(2)
c1.plotly_chart(
    line(
        all_,
        x="batch",
        y=tput,
        color="run",
        line_dash="precision",
        markers=True,
        log_x=True,
        title=f"Throughput ({tput.replace('_per_s', '')}/s) vs batch: measured",
    ),
    key="cmp_tput",
)
c2.plotly_chart(
    line(
        all_,
        x="batch",
        y="p99_ms",
        color="run",
        line_dash="precision",
        markers=True,
        log_x=True,
        log_y=True,
        title="p99 latency per batch vs batch: measured",
    ),
    key="cmp_lat",
)
if all_.energy_j_per_item.notna().any():
    st.plotly_chart(
        line(
            all_,
            x="batch",
            y="energy_j_per_item",
            color="run",
            line_dash="precision",
            markers=True,
            log_x=True,
            title="Energy per item (J): measured",
        ),
        key="cmp_energy",
    )
else:
    st.info("Energy: none of these runs has a power measurement.")
