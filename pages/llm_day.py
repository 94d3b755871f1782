"""The Fleet sizing page's day section, for a generative scenario with diurnal arrivals: replicas hour by hour,
device-hours reactive or pre-warmed, the requests over an SLO while new replicas start, and the day under an
autoscaler (planner/llm/day_request.py, what `fleetwise day` answers). Not a page of its own."""

from __future__ import annotations

import json
from typing import Any, cast

import pandas as pd
import streamlit as st

from pages.common import JOBS, cached, line, price_book
from planner.evidence.catalog import Catalog
from planner.fleet.escape import md_escape as esc
from planner.fleet.report import money
from planner.llm.day import DAYS_PER_MONTH, LlmDay
from planner.llm.day_request import DayRequest, answer_day
from planner.traffic.scenario import Diurnal, Scenario, parse_scenario

AUTOSCALE = ("off", "concurrency:auto", "concurrency", "queue", "kv")


def show_llm_day(scenario: Scenario, cat: Catalog) -> None:
    """The day form, then the last day planned for this scenario."""
    if not isinstance(scenario.arrivals, Diurnal):
        return
    llm = {
        f"{s.run.short_id()} · {s.run.workload.name} · {s.run.stack.device_name}": s
        for s in cat.runs
        if s.run.is_llm
    }
    st.subheader("The day")
    st.caption(
        "Each hour sized at its rate; device-hours as an hourly schedule runs them (reactive, or new replicas "
        "pre-warmed by the start-up time), the requests over an SLO through every up-ramp, and optionally the "
        "day under a reactive autoscaler (docs/llm-serving.md, `fleetwise day`)."
    )
    if not llm:
        st.info("No LLM run to plan the day on: measure one (`fleetwise measure --endpoint ...`).")
        return
    with st.form("llm_day"):
        c1, c2, c3 = st.columns(3)
        run = c1.selectbox("LLM run", list(llm), key="day_run", persist_state="session")
        startups = c2.text_input(
            "Start-up times, s (comma-separated; `run`: the start-up the run timed)",
            "0,90",
            key="day_startups",
            persist_state="session",
        )
        cooldown = c3.number_input(
            "Cooldown / stabilisation, s", 0.0, 3600.0, 300.0, key="day_cooldown", persist_state="session"
        )
        c1, c2, c3, c4 = st.columns(4)
        seqs = c1.number_input("max_num_seqs", 1, 4096, 256, key="day_seqs", persist_state="session")
        tokens = c2.number_input(
            "max_num_batched_tokens", 16, 65_536, 2048, key="day_tokens", persist_state="session"
        )
        block = c3.number_input("KV block size", 1, 1024, 128, key="day_block", persist_state="session")
        kv = c4.number_input(
            "KV blocks per replica (0: the run's)", 0, 10_000_000, 8192, key="day_kv", persist_state="session"
        )
        c1, c2, c3 = st.columns(3)
        spares = c1.number_input("Spare replicas (N+k)", 0, 100, 0, key="day_spares", persist_state="session")
        metric = c2.selectbox(
            "Autoscaler",
            AUTOSCALE,
            key="day_autoscale",
            persist_state="session",
            help="The HPA's rule on a per-replica metric; concurrency:auto aims at what the peak hour's sized "
            "replicas hold. It simulates every hour: minutes for a busy day.",
        )
        target = c3.number_input(
            "Autoscaler target (concurrency, queue; kv 0..1)",
            0.001,
            100_000.0,
            8.0,
            key="day_target",
            persist_state="session",
        )
        prefix = st.checkbox(
            "Prefix caching, routed prefix-aware (what the scenario's llm.prefix says prompts share)",
            key="day_prefix",
            persist_state="session",
        )
        submitted = st.form_submit_button("Plan the day")
    params = {
        "scenario": scenario.model_dump(mode="json"),
        "run": str(llm[run].path) if run in llm else None,
        "startups": startups,
        "cooldown_s": float(cooldown),
        "max_num_seqs": int(seqs),
        "max_num_batched_tokens": int(tokens),
        "block_size": int(block),
        "kv_blocks": int(kv) or None,
        "spares": int(spares),
        "prefix_caching": bool(prefix),
        "autoscale": None
        if metric == "off"
        else metric
        if metric.endswith(":auto")
        else f"{metric}:{target:g}",
    }
    if submitted:
        st.session_state["day_params"] = params
    kept = st.session_state.get("day_params")
    if kept is None or kept["scenario"] != params["scenario"] or kept["run"] is None:
        st.info("Choose the run and the policy, then **Plan the day**.")
        return
    if kept != params:
        st.warning("The day below is for the choices last planned: press **Plan the day** to plan these.")
    try:
        day = day_for(kept, cat)
    except ValueError as exc:  # DayError, ScenarioError, EngineError, ... : one line each
        st.error(esc(str(exc), 2000))
        return
    _show(day)


def day_for(params: dict[str, Any], cat: Catalog) -> LlmDay:
    """The day for these parameters (cached on them, the run's content id and the price book)."""
    summary = next(s for s in cat.runs if str(s.path) == params["run"])

    def compute(_: Any) -> LlmDay:
        req = DayRequest(
            scenario=parse_scenario(params["scenario"], "scenario"),
            run=summary.run,
            startups=params["startups"],
            cooldown_s=params["cooldown_s"],
            max_num_seqs=params["max_num_seqs"],
            max_num_batched_tokens=params["max_num_batched_tokens"],
            block_size=params["block_size"],
            kv_blocks=params["kv_blocks"],
            spares=params["spares"],
            prefix_caching=params.get("prefix_caching", False),
            router="prefix-aware" if params.get("prefix_caching") else "least-outstanding",
            autoscale=params["autoscale"],
            jobs=JOBS,
        )
        return answer_day(req, price_book())

    key = ("llm_day", json.dumps(params, sort_keys=True), summary.run.id)
    return cast(LlmDay, cached(key, compute, "Planning the day: every hour sized, every ramp simulated"))


def _show(d: LlmDay) -> None:
    hours = pd.DataFrame(
        {"hour": [h.hour for h in d.hours], "req/s": [h.rate_rps for h in d.hours]}
        | {"schedule (running)": [h.running for h in d.hours]}
        | {
            f"autoscaler, start-up {a.policy.startup_s:g} s": [h.mean_replicas for h in a.hours]
            for a in d.autoscaled
        }
    )
    fig = line(
        hours.melt(id_vars=["hour", "req/s"], var_name="policy", value_name="replicas"),
        x="hour",
        y="replicas",
        color="policy",
        markers=True,
        line_shape="hv",  # a count holds through its hour
        title="Replicas by hour (the autoscaler's: mean replicas holding a device)",
    )
    st.plotly_chart(fig)
    rows = []
    for key, device_hours in d.device_hours_per_day.items():
        usd = d.usd_per_day.get(key)
        missed, total, _ = d.ramp_misses(key)
        rows.append(
            {
                "start-up s": key,
                "policy": "hourly schedule, reactive",
                "device-hours a day": round(device_hours, 2),
                "$ a month": money(None if usd is None else usd * DAYS_PER_MONTH),
                "requests over an SLO": f"{missed:,} of {total:,} in the up-ramps ({missed / total:.1%})"
                if total
                else "no up-ramp",
            }
        )
        warm = d.prewarmed_usd_per_day.get(key)
        rows.append(
            {
                "start-up s": key,
                "policy": "hourly schedule, pre-warmed",
                "device-hours a day": round(d.prewarmed_device_hours_per_day[key], 2),
                "$ a month": money(None if warm is None else warm * DAYS_PER_MONTH),
                "requests over an SLO": "none from start-up",
            }
        )
    for a in d.autoscaled:
        rows.append(
            {
                "start-up s": f"{a.policy.startup_s:g}",
                "policy": f"autoscaler ({a.scale_ups} ups, {a.scale_downs} downs)",
                "device-hours a day": round(a.device_hours_per_day or 0.0, 2),
                "$ a month": money(None if a.usd_per_day is None else a.usd_per_day * DAYS_PER_MONTH),
                "requests over an SLO": f"{a.missed_per_day:,.0f} of {a.requests_per_day:,.0f} a day ({a.missed_share:.2%})",
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if all(v is None for v in d.usd_per_day.values()):
        st.caption("Not priced: the price book has no price for the run's device (sized, not costed).")
    if d.autoscaled:
        st.caption(esc(f"Autoscaler: {d.autoscaled[0].policy.label()}.", 1000))
    for n in d.notes:
        st.caption(esc(n, 2000))
