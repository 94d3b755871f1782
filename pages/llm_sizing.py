"""The Fleet sizing page for a generative scenario: LLM runs, engine knobs and precisions in; replicas for the
TTFT/TPOT SLOs, cost per month and per 1M input and output tokens out. Not a page of its own."""

from __future__ import annotations

import json
from typing import Any, cast

import pandas as pd
import streamlit as st

from pages.common import (
    EXECUTOR,
    JOBS,
    benchmarks,
    cached,
    file_digests,
    llm_profile_paths,
    price_book,
    prices_digest,
    run_ids_for,
    save_plan_form,
    session_price_form,
)
from planner.evidence.bench_import import import_file
from planner.evidence.catalog import Catalog
from planner.fleet.escape import md_escape as esc
from planner.fleet.prices import PRICINGS
from planner.fleet.redundancy import Redundancy
from planner.fleet.report import money
from planner.llm.sizing import DEFAULT_BATCHED_TOKENS, DEFAULT_SEQS, LlmPlan, LlmSizingError
from planner.question.request import SizingRequest, answer
from planner.traffic.scenario import Scenario, parse_scenario
from planner.workers import TaskProgress


def _table(plan: LlmPlan) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for o in sorted(plan.options, key=lambda o: (not o.meets_slo, o.monthly_cost_usd or float("inf"))):
        rows.append(
            {
                "device": o.shown_device,
                "precision": o.precision,
                "max_num_seqs": o.max_num_seqs,
                "tokens/step": o.max_num_batched_tokens,
                "prefill": "chunked" if o.chunked_prefill else "whole",
                "prefix cache (prompt tokens cached)": (
                    "off"
                    if not o.prefix_caching
                    else "-"
                    if o.prefix_hit_share is None
                    else f"{o.prefix_hit_share:.1%}"
                ),
                "router": o.router or ("prefix-aware" if o.prefix_caching else "least-outstanding"),
                "replica": o.replica,
                "replicas": o.replicas,
                "prefill + decode": f"{o.prefill_replicas} + {o.decode_replicas}"
                if o.prefill_replicas
                else ("-" if o.disaggregated else "aggregated"),
                "deployed (N+k, headroom)": o.replicas_deployed,
                "devices (priced)": o.devices_deployed,
                "meets SLO": o.meets_slo,
                "monthly $": money(o.monthly_cost_usd),
                "$/1M input tokens": money(o.usd_per_1m_input_tokens),
                "$/1M output tokens": money(o.usd_per_1m_output_tokens),
                "$/1M output, all-in": money(o.usd_per_1m_output_tokens_all_in),
                **{k.split(" <=")[0] + " ms": None if v is None else round(v, 3) for k, v in o.slo.items()},
                "output tokens/J": o.output_tokens_per_joule,
                "why / not priced": "; ".join(x for x in (o.why, o.not_priced) if x),
            }
        )
    return pd.DataFrame(rows)


def show_llm_sizing(scenario: Scenario, cat: Catalog) -> None:
    """The form, then the last answer for this scenario."""
    llm = [s for s in cat.runs if s.run.is_llm]
    st.caption(
        esc(
            f"Generative requests; SLOs: {'; '.join(s.label() for s in scenario.slo) or 'none'}. Sized on LLM runs "
            "by the continuous-batching engine model (docs/llm-serving.md).",
            4000,
        )
    )
    benches = {f"{b.tool} {b.short_id()} · {b.model} · {b.hardware}": str(p) for p, b in benchmarks()[0]}
    assumed = {p.rsplit("/", 1)[-1].removesuffix(".yaml"): p for p in llm_profile_paths()}
    labels = {
        f"{s.run.short_id()} · {s.run.workload.name} · {s.run.stack.device_name}": str(s.path) for s in llm
    }
    precisions = sorted(
        {p.precision for s in llm for p in s.run.points if p.phase is not None and p.latency_ms}
    )
    with st.form("llm_sizing"):
        c1, c2 = st.columns(2)
        # in-process runs know their KV capacity; an engine run needs the KV blocks given below
        knows_kv = [k for k, s in zip(labels, llm, strict=True) if s.run.llm is not None and s.run.llm.memory]
        runs = c1.multiselect(
            "LLM runs",
            list(labels),
            default=(knows_kv or list(labels))[:1],
            key="llm_runs",
            persist_state="session",
        )
        picked_profiles = st.multiselect(
            "Assumed LLM profiles: hardware you do not own, timed by a roofline of its datasheet (ASSUMED, not "
            "measured; a measured run of the same device outranks it)",
            list(assumed),
            key="llm_profiles",
            persist_state="session",
        )
        picked_benches = st.multiselect(
            "Engine benchmarks (imported results; the files of one engine, model and hardware make one capacity curve)",
            list(benches),
            key="llm_benches",
            persist_state="session",
        )
        prec = c2.multiselect(
            "Precisions (empty: every measured one)", precisions, key="llm_prec", persist_state="session"
        )
        c1, c2, c3 = st.columns(3)
        seqs = c1.multiselect(
            "max_num_seqs",
            [8, 16, 64, 128, 256, 512],
            default=list(DEFAULT_SEQS),
            key="llm_seqs",
            persist_state="session",
        )
        tokens = c2.multiselect(
            "max_num_batched_tokens",
            [512, 1024, 2048, 4096, 8192, 16384],
            default=list(DEFAULT_BATCHED_TOKENS),
            key="llm_tokens",
            persist_state="session",
        )
        chunked = c3.multiselect(
            "Chunked prefill", ["on", "off"], default=["on"], key="llm_chunked", persist_state="session"
        )
        c1, c2 = st.columns(2)
        prefix = c1.multiselect(
            "Prefix caching",
            ["on", "off"],
            default=["off"],
            key="llm_prefix",
            persist_state="session",
            help="vLLM's automatic prefix caching, routed prefix-aware: it finds what the scenario's trace shares "
            "(a Mooncake trace's prefix blocks). Pick both to size the capacity with and without it side by side.",
        )
        pricing = c2.selectbox("Pricing", list(PRICINGS), key="llm_pricing", persist_state="session")
        c1, c2, c3, c4 = st.columns(4)
        split = c1.multiselect(
            "Prefill / decode",
            ["aggregated", "disaggregated"],
            default=["aggregated"],
            key="llm_split",
            persist_state="session",
            help="Disaggregated: a prefill pool and a decode pool of the option's shape, each request's KV sent "
            "between them; the split of replicas is searched. Pick both to compare.",
        )
        link_gbps = c2.number_input(
            "KV link GB/s (disaggregated)",
            0.001,
            10_000.0,
            50.0,
            key="llm_link_gbps",
            persist_state="session",
        )
        link_ms = c3.number_input(
            "KV link ms a transfer", 0.0, 60_000.0, 0.5, key="llm_link_ms", persist_state="session"
        )
        kv_bytes = c4.number_input(
            "KV bytes a token (0: the run's)",
            0,
            1_000_000_000,
            0,
            key="llm_kv_bytes",
            persist_state="session",
        )
        c1, c2 = st.columns(2)
        kv = c1.number_input(
            "KV blocks of 16 tokens per replica (0: from the run or profile)",
            0,
            10_000_000,
            0,
            key="llm_kv",
            persist_state="session",
        )
        spares = int(
            c2.number_input("Spare replicas (N+k)", 0, 100, 0, key="llm_spares", persist_state="session")
        )
        headroom = st.number_input(
            "Headroom fraction", 0.0, 5.0, 0.0, step=0.05, key="llm_headroom", persist_state="session"
        )
        model = scenario.llm.model if scenario.llm is not None else None
        any_model = model is not None and st.checkbox(
            f"Also use evidence of models other than {model.label()} (labelled ANOTHER MODEL)",
            key="llm_any_model",
            persist_state="session",
            help="Without it, runs and benchmarks of another model are left out, with the reason.",
        )
        submitted = st.form_submit_button("Size")
    current = {
        "scenario": scenario.model_dump(mode="json"),
        "runs": sorted(labels[r] for r in runs),
        "precisions": sorted(str(p) for p in prec),
        "max_num_seqs": sorted(seqs),
        "max_num_batched_tokens": sorted(tokens),
        "chunked": sorted(c == "on" for c in chunked),
        "prefix_caching": sorted(c == "on" for c in prefix),
        "disaggregated": sorted(c == "disaggregated" for c in split),
        "kv_link": [float(link_gbps), float(link_ms), float(kv_bytes) or None],
        "pricing": pricing,
        "kv_blocks": int(kv) or None,
        "spares": spares,
        "headroom": float(headroom),
        "session_prices": st.session_state.get("session_prices", {}),
        "benchmarks": sorted(benches[b] for b in picked_benches),
        "profiles": sorted(assumed[p] for p in picked_profiles),
        "any_model": bool(any_model),
    }
    if submitted:
        if (
            (not runs and not picked_benches and not picked_profiles)
            or not seqs
            or not tokens
            or not chunked
            or not prefix
            or not split
        ):
            st.error(
                "Pick a run, an assumed profile or a benchmark, and at least one max_num_seqs, "
                "max_num_batched_tokens, prefill mode, prefix-caching setting and prefill / decode mode."
            )
            return
        st.session_state["llm_params"] = current
    params = st.session_state.get("llm_params")
    if params is None or params["scenario"] != scenario.model_dump(mode="json"):
        st.info("Choose the runs and engine knobs, then **Size**.")
        return
    if {k: v for k, v in params.items() if k != "session_prices"} != {
        k: v for k, v in current.items() if k != "session_prices"
    }:
        st.warning(
            "The answer below is for the question last sized, not for the form's current choices: press "
            "**Size** to answer those."
        )
    try:
        plan = llm_plan_for(params)
    except (LlmSizingError, ValueError) as exc:
        st.error(esc(str(exc), 2000))
        return
    st.session_state["last_plan_kind"] = "llm"  # the explorer and the report follow the latest sizing
    st.subheader("Answer")
    assumed_answer = plan.answer.startswith("ASSUMED")
    badge = ":orange[**ASSUMED, not measured**]" if assumed_answer else ":green[**measured**]"
    st.markdown(f"{badge} {esc(plan.answer, 2000)}")
    if plan.options:
        st.dataframe(_table(plan), hide_index=True)
    if plan.from_benchmarks:
        st.markdown(
            ":orange[**from imported engine benchmarks**]: one curve per engine, model and hardware, measured by the "
            "tool and interpolated between its levels; no queueing simulated"
        )
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "benchmark files": f"{x.tool} "
                        + ", ".join(i.removeprefix("sha256:")[:12] for i in x.benchmark_ids),
                        "hardware": x.hardware,
                        "replica": x.replica,
                        "capacity between levels": " and ".join(v for v in (x.level, x.capacity_above) if v),
                        "req/s per replica": x.capacity_rps,
                        "replicas": x.replicas,
                        "devices (priced)": x.devices,
                        "meets SLO": x.meets_slo,
                        **{k.split(" <=")[0] + " ms": v for k, v in x.slo.items()},
                        "monthly $": money(x.monthly_cost_usd),
                        "$/1M output, all-in": money(x.usd_per_1m_output_tokens_all_in),
                        "why / not priced": "; ".join(v for v in (x.why, x.not_priced) if v),
                    }
                    for x in plan.from_benchmarks
                ]
            ),
            hide_index=True,
        )
        for w in dict.fromkeys(w for x in plan.from_benchmarks for w in x.warnings):
            st.warning(esc(w, 2000))
    st.caption(
        "$/1M input and output tokens split the monthly cost by the engine's busy time in prefill and decode "
        "(with prefix caching, input tokens as computed: those found cached are not counted); all-in puts every "
        "dollar on the output tokens. Energy (output tokens/J) where the run measured it."
    )
    for note in [*plan.notes, *dict.fromkeys(w for o in plan.options for w in o.warnings)]:
        st.warning(esc(note, 2000))
    for why in dict.fromkeys(o.not_priced for o in plan.options if o.not_priced):
        st.warning(f"{esc(why, 600)}: sized, not costed; add the device to the price book")
    unpriced = {o.device for o in plan.options if o.not_priced} | {
        x.hardware for x in plan.from_benchmarks if x.not_priced
    }
    session_price_form(sorted(unpriced), "llm_params")
    save_plan_form(scenario, plan, {k: v for k, v in params.items() if k != "scenario"}, "llm")


def llm_plan_for(params: dict[str, Any]) -> LlmPlan:
    """The LLM plan for these parameters (cached on them, the runs' content ids and the price book)."""

    def compute(progress: TaskProgress) -> LlmPlan:
        req = SizingRequest(  # the CLI's request, filled from the form
            scenario=parse_scenario(params["scenario"], "scenario"),
            runs=tuple(params["runs"]),
            profiles=tuple(params.get("profiles", [])),
            precisions=tuple(params["precisions"]) or None,
            pricing=params["pricing"],
            redundancy=Redundancy(params.get("spares", 0), params.get("headroom", 0.0)),
            max_num_seqs=tuple(params["max_num_seqs"]) or None,
            max_num_batched_tokens=tuple(params["max_num_batched_tokens"]) or None,
            chunked_prefill=tuple(params["chunked"]) or None,
            prefix_caching=tuple(params.get("prefix_caching", [False])) or None,
            disaggregated=tuple(params.get("disaggregated", [False])) or None,
            kv_link_gbps=params["kv_link"][0] if True in params.get("disaggregated", []) else None,
            kv_link_latency_ms=params["kv_link"][1] if True in params.get("disaggregated", []) else None,
            kv_bytes_per_token=params["kv_link"][2] if True in params.get("disaggregated", []) else None,
            kv_blocks=params["kv_blocks"],
            benchmarks=tuple(import_file(b) for b in params.get("benchmarks", [])),
            max_replicas=256,
            any_model=params.get("any_model", False),
        )
        if not req.generative:
            raise LlmSizingError(f"scenario {req.scenario.name} has no llm block: size it on the Sizing page")
        return cast(LlmPlan, answer(req, price_book(params), JOBS, progress, EXECUTOR))

    key = (
        "llm_plan",
        json.dumps(params, sort_keys=True),
        *run_ids_for(params["runs"]),
        *file_digests(params.get("profiles", [])),
        prices_digest(),
    )
    return cast(
        LlmPlan, cached(key, compute, "Sizing: each option at a doubling, then bisected, replica count")
    )
