"""The Runs page's view of an LLM run: prefill and decode curves as measured, memory facts, energy per phase
and, for an engine run, what the engine said about itself. Not a page of its own (app.py lists the pages)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from pages.common import line
from planner.evidence.catalog import run_curves
from planner.fleet.escape import md_escape as esc

if TYPE_CHECKING:
    from planner.evidence.catalog import Run


def _why(value: Any) -> str | None:
    """The reason of an unavailable value (the app reads run files through the planner, never measure)."""
    return getattr(value, "unavailable", None)


def _label(row: pd.Series, engine: bool) -> str:
    return f"{row.precision} {'concurrency' if engine else 'batch'} {int(row.batch)}"


def show_llm(run: Run) -> None:
    """Step tables and curves by phase; facts with how each was found; nothing estimated."""
    curves = run_curves(run)
    engine = bool((curves.source == "engine").any())
    ok = curves[curves.status.isin(["ok", "unstable"])].copy()
    ok["series"] = ok.apply(lambda r: _label(r, engine), axis=1)
    st.caption(
        "LLM run: "
        + (
            "a closed-loop sweep against a serving engine (client-side timing)"
            if engine
            else "prefill, decode and mixed steps timed in-process"
        )
        + "; unstable points missed their CI "
        "target and say so in the table."
    )
    charts = (
        ("prefill", "seq_len", "prompt tokens", "TTFT" if engine else "Prefill step"),
        ("decode", "context_tokens", "context tokens", "Inter-token gap" if engine else "Decode step"),
    )
    for col, (phase, x, xname, what) in zip(st.columns(2), charts, strict=True):
        rows = ok[ok.phase == phase]
        if rows.empty:
            continue
        col.plotly_chart(
            line(
                rows.sort_values(x),
                x=x,
                y="p50_ms",
                color="series",
                markers=True,
                log_x=True,
                log_y=True,
                title=f"{what} p50 (ms) vs {xname.removesuffix(' tokens') if phase == 'decode' else xname}: measured",
                labels={x: xname, "p50_ms": "p50 ms"},
            ),
            key=f"llm_{phase}",
        )
    table = curves[
        [
            "phase",
            "precision",
            "batch",
            "seq_len",
            "context_tokens",
            "chunk_tokens",
            "status",
            "p50_ms",
            "p99_ms",
            "units_per_s",
            "reason",
            "flags",
        ]
    ].rename(
        columns={
            "batch": "concurrency" if engine else "batch",
            "seq_len": "prompt",
            "context_tokens": "context",
            "chunk_tokens": "chunk",
            "units_per_s": "tokens/s",
        }
    )
    st.dataframe(table, hide_index=True)
    facts = run.llm
    if facts is None:
        return
    if facts.memory:
        st.subheader(f"Memory at {facts.memory_fraction:g} of device memory")
        st.table(
            pd.DataFrame(
                [
                    {
                        "precision": m.precision,
                        "KV bytes/token": m.kv_bytes_per_token,
                        "weights MiB": round(m.weight_bytes / 2**20, 1),
                        "KV tokens that fit": f"{m.kv_tokens_fit:,}"
                        if isinstance(m.kv_tokens_fit, int)
                        else _why(m.kv_tokens_fit),
                        "how": m.kv_tokens_fit_method,
                    }
                    for m in facts.memory
                ]
            ).set_index("precision")
        )
    if facts.energy_note:
        st.info(f"Energy per phase: {esc(facts.energy_note, 1000)}. No figure is estimated.")
    elif facts.energy:
        st.table(
            pd.DataFrame(
                [
                    {
                        "precision": e.precision,
                        "phase": e.phase,
                        "mJ/token (median)": round(e.j_per_token * 1000, 4)
                        if isinstance(e.j_per_token, float)
                        else None,
                        "points": e.points,
                    }
                    for e in facts.energy
                ]
            )
        )
    if facts.engine is not None:
        e = facts.engine
        params = ", ".join(f"{k}={v}" for k, v in e.params.items()) or "none given"
        version = _why(e.version) or e.version
        st.caption(esc(f"Engine {e.url}, model {e.model}; version: {version}; engine params: {params}", 2000))
