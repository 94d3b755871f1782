"""The Fleet sizing page for a generative scenario: LLM runs, engine knobs and precisions in; replicas for the
TTFT/TPOT SLOs, cost per month and per 1M input and output tokens out. Not a page of its own."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from pages.common import price_book
from planner.evidence.catalog import Catalog
from planner.fleet.escape import md_escape as esc
from planner.fleet.prices import PRICINGS
from planner.fleet.report import money
from planner.llm.sizing import DEFAULT_BATCHED_TOKENS, DEFAULT_SEQS, LlmPlan, LlmSizingError, size_llm
from planner.traffic.scenario import Scenario


def _table(plan: LlmPlan) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for o in sorted(plan.options, key=lambda o: (not o.meets_slo, o.monthly_cost_usd or float("inf"))):
        rows.append(
            {
                "device": o.device,
                "precision": o.precision,
                "max_num_seqs": o.max_num_seqs,
                "tokens/step": o.max_num_batched_tokens,
                "prefill": "chunked" if o.chunked_prefill else "whole",
                "replicas": o.replicas,
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
    if not llm:
        st.info("No LLM run in the runs folder: measure one with `fleetwise measure -w llm` or `--endpoint`.")
        return
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
            "LLM runs", list(labels), default=(knows_kv or list(labels))[:1], key="llm_runs"
        )
        prec = c2.multiselect("Precisions (empty: every measured one)", precisions, key="llm_prec")
        c1, c2, c3 = st.columns(3)
        seqs = c1.multiselect(
            "max_num_seqs", [8, 16, 64, 128, 256, 512], default=list(DEFAULT_SEQS), key="llm_seqs"
        )
        tokens = c2.multiselect(
            "max_num_batched_tokens",
            [512, 1024, 2048, 4096, 8192, 16384],
            default=list(DEFAULT_BATCHED_TOKENS),
            key="llm_tokens",
        )
        chunked = c3.multiselect("Chunked prefill", ["on", "off"], default=["on"], key="llm_chunked")
        c1, c2 = st.columns(2)
        pricing = c1.selectbox("Pricing", list(PRICINGS), key="llm_pricing")
        kv = c2.number_input(
            "KV blocks of 16 tokens per replica (0: from the run)", 0, 10_000_000, 0, key="llm_kv"
        )
        submitted = st.form_submit_button("Size")
    key = ("llm_plan", scenario.name)
    if submitted:
        if not runs or not seqs or not tokens or not chunked:
            st.error("Pick at least one run, max_num_seqs, max_num_batched_tokens and prefill mode.")
            return
        with st.spinner("sizing: simulating each option at a doubling, then bisected, replica count"):
            try:
                plan = size_llm(
                    scenario,
                    [labels[r] for r in runs],
                    [str(p) for p in prec] or None,
                    tuple(sorted(seqs)),
                    tuple(sorted(tokens)),
                    tuple(c == "on" for c in chunked),
                    price_book(),
                    pricing,  # type: ignore[arg-type]
                    kv_blocks=int(kv) or None,
                )
            except (LlmSizingError, ValueError) as exc:
                st.error(esc(str(exc), 2000))
                return
        st.session_state[str(key)] = plan.model_dump(mode="json")
    data = st.session_state.get(str(key))
    if data is None:
        st.info("Choose the runs and engine knobs, then **Size**.")
        return
    plan = LlmPlan.model_validate(data)
    st.subheader("Answer")
    st.markdown(f":green[**measured**] {esc(plan.answer, 2000)}")
    st.dataframe(_table(plan), hide_index=True)
    st.caption(
        "$/1M input and output tokens split the monthly cost by the engine's busy time in prefill and decode; "
        "all-in puts every dollar on the output tokens. Energy (output tokens/J) where the run measured it."
    )
    for note in [*plan.notes, *dict.fromkeys(w for o in plan.options for w in o.warnings)]:
        st.warning(esc(note, 2000))
