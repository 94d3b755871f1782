"""Scenario: pick a shipped scenario or edit one (arrivals, diurnal shape, sizes, SLOs), validated live."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.express as px
import streamlit as st
import yaml

from pages.common import scenarios_dir, shipped_scenarios
from planner.fleet.escape import md_escape as esc
from planner.traffic.arrivals import read_trace
from planner.traffic.scenario import (
    MAX_NAME_CHARS,
    ScenarioError,
    Trace,
    dump_scenario,
    parse_scenario,
    parse_scenario_text,
    save_scenario,
    scenario_path,
)

st.title("Traffic scenario")
shipped = shipped_scenarios()
names = list(shipped)
base_name = st.selectbox("Start from", names, key="sc_base")
base: dict[str, Any] = shipped[base_name].model_dump(mode="json")
st.caption(esc(shipped[base_name].description, 4000))
k = f"sc_{base_name}_"  # widget keys per base scenario: switching base resets the form

data = dict(base)
data["name"] = st.text_input("Name", base["name"], max_chars=MAX_NAME_CHARS, key=k + "name")
data["description"] = st.text_input(
    "Description", base.get("description", ""), max_chars=4000, key=k + "desc"
)
arr = dict(base["arrivals"])
st.subheader("Arrivals")
if arr["process"] in ("poisson", "gamma"):
    arr["process"] = st.radio(
        "Process",
        ["poisson", "gamma"],
        index=["poisson", "gamma"].index(arr["process"]),
        horizontal=True,
        key=k + "proc",
    )
    arr["rate_rps"] = st.number_input(
        "Mean rate (requests/s)", min_value=0.001, value=float(arr["rate_rps"]), key=k + "rate"
    )
    if arr["process"] == "gamma":
        arr["cv"] = st.number_input(
            "Inter-arrival cv (1 = Poisson, > 1 bursty)",
            min_value=0.01,
            value=float(arr.get("cv", 2.0)),
            key=k + "cv",
        )
    else:
        arr.pop("cv", None)
elif arr["process"] == "diurnal":
    arr["peak_rate_rps"] = st.number_input(
        "Peak rate (requests/s)", min_value=0.001, value=float(arr["peak_rate_rps"]), key=k + "peak"
    )
    hours = pd.DataFrame({"hour": range(24), "multiplier": arr["hourly_multipliers"]})
    edited = st.data_editor(hours, disabled=["hour"], hide_index=True, key=k + "mult", height=300)
    arr["hourly_multipliers"] = [float(v) for v in edited["multiplier"]]
    st.plotly_chart(
        px.line(
            edited.assign(rate=edited.multiplier * arr["peak_rate_rps"]),
            x="hour",
            y="rate",
            markers=True,
            title="Requests/s over the day",
        ),
        key="diurnal_chart",
    )
elif arr["process"] == "mmpp":
    states = st.data_editor(pd.DataFrame(arr["states"]), num_rows="dynamic", hide_index=True, key=k + "mmpp")
    arr["states"] = states.to_dict("records")
else:
    st.info("Trace replay: edit the trace path and speed-up in the YAML below.")
data["arrivals"] = arr

st.subheader("Service-level objectives")
slo = st.data_editor(
    pd.DataFrame(base["slo"] or [{"metric": "latency", "percentile": 99.0, "threshold_ms": 100.0}]),
    num_rows="dynamic",
    hide_index=True,
    key=k + "slo",
    column_config={"metric": st.column_config.SelectboxColumn(options=["latency", "queue"])},
)
data["slo"] = [r for r in slo.to_dict("records") if all(v is not None and v == v for v in r.values())]
c1, c2, c3 = st.columns(3)
data["growth"] = c1.number_input(
    "Growth multiplier", min_value=0.01, value=float(base["growth"]), key=k + "growth"
)
data["seed"] = int(c2.number_input("Seed", min_value=0, value=int(base["seed"]), step=1, key=k + "seed"))
if base.get("requests") is not None:
    data["requests"] = int(
        c3.number_input(
            "Requests simulated",
            min_value=1,
            max_value=10_000_000,
            value=int(base["requests"]),
            step=1000,
            key=k + "req",
        )
    )
else:
    data["duration_s"] = c3.number_input(
        "Duration (s)", min_value=1.0, value=float(base["duration_s"]), key=k + "dur"
    )

st.caption(
    esc(f"Request sizes: items {data['size']['items']}; sequence length {data['size'].get('seq_len')}")
)
edited_data: Any = data
if st.toggle("Edit everything as YAML (sizes, trace, warm-up)", key=k + "yaml_on"):
    text = st.text_area("Scenario YAML", yaml.safe_dump(data, sort_keys=False), height=320, key=k + "yaml")
try:
    if st.session_state.get(k + "yaml_on"):
        sc = parse_scenario_text(text, "scenario", scenarios_dir())  # strict: no aliases, no duplicate keys
    else:
        sc = parse_scenario(edited_data, "scenario", scenarios_dir())
except ScenarioError as exc:
    st.error(f"Not valid: {esc(exc, 2000)}")
    st.stop()

st.success(
    f"Valid scenario: peak {sc.peak_rate_rps() or 0:.4g} requests/s, SLOs: "
    + esc("; ".join(s.label() for s in sc.slo) or "none (sizing needs at least one)")
)
edited_json = sc.model_dump(mode="json")
if edited_json != shipped[base_name].model_dump(mode="json"):
    st.session_state["scenario_json"] = edited_json  # offered first on Fleet sizing
else:  # viewing a shipped scenario changes nothing elsewhere
    st.session_state.pop("scenario_json", None)
out = dump_scenario(sc)
c1, c2 = st.columns(2)
c1.download_button("Download YAML", out, file_name=f"{sc.name}.yaml", mime="application/x-yaml")
target = scenario_path(sc, scenarios_dir())
replace = target.exists() and c2.checkbox(f"Replace the existing {esc(target.name)}", key="sc_replace")
if c2.button("Save to scenarios/", key="sc_save"):
    try:
        if isinstance(sc.arrivals, Trace):
            read_trace(sc.arrivals.path)  # a scenario is saved only with a trace that can be replayed
        path = save_scenario(sc, scenarios_dir(), overwrite=replace)
    except (ScenarioError, OSError) as exc:
        st.error(f"Not saved: {esc(exc, 2000)}")
    else:
        st.success(f"Saved {esc(path.name)}")
st.caption(
    "Once edited, Fleet sizing offers this scenario first ('from the Scenario page'); an unedited shipped "
    "scenario changes nothing there."
)
