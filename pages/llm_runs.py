"""The Runs page's view of an LLM run: prefill and decode curves as measured, memory facts, energy per phase
and, for an engine run, what the engine said about itself. Not a page of its own (app.py lists the pages)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from pages.common import benchmarks, line, text_table, validations_dir
from planner.evidence.catalog import run_curves
from planner.evidence.engine_benchmark import Stat
from planner.evidence.llm_validation import (
    LlmValidation,
    Pcts,
    llm_validation_filename,
    save_llm_validation,
    scan_llm_validations,
)
from planner.fleet.escape import md_escape as esc
from planner.llm.validate import recheck

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
        rows = ok[(ok.phase == phase) & ok.cached_tokens.isna()]  # behind a cached prefix: in the table only
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
            "cached_tokens",
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
            "cached_tokens": "after cached",
            "units_per_s": "tokens/s",
        }
    )
    st.dataframe(table, hide_index=True)
    show_llm_validations(run, validations_dir())
    facts = run.llm
    if facts is None:
        return
    if facts.memory:
        st.subheader(f"Memory at {facts.memory_fraction:g} of device memory")
        text_table(
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
        text_table(
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
        untimed = _why(e.startup)
        if untimed:
            st.caption(esc(f"Engine start-up: not timed ({untimed})", 1000))
        elif e.startup is not None:
            st.caption(
                esc(
                    f"Engine start-up: {e.startup.seconds:.1f} s to the first token, {e.startup.answered_after_s:.1f} "  # type: ignore[union-attr]
                    f"s to its first answer ({e.startup.how}); `fleetwise day --startup-s run` plans with it",  # type: ignore[union-attr]
                    1000,
                )
            )


def _pair(lo: float | None, hi: float | None) -> str:
    return "-" if lo is None or hi is None else f"{lo:.3g} / {hi:.3g}"


def _pcts(p: Pcts | None) -> str:
    """A validation's p50 / p99."""
    return _pair(p.p50_ms, p.p99_ms) if p is not None else "-"


def _stat(s: Stat | None) -> str:
    """A benchmark's p50 / p99, as the tool reported them."""
    return _pair(s.p50, s.p99) if s is not None else "-"


def show_llm_validations(run: Run, folder: Path) -> None:
    """The run's live validations against an engine: predicted vs measured per load, errors, reasons."""
    found, broken = scan_llm_validations(run.id, folder)
    for p, why in broken:
        st.warning(f"{esc(p.name)} was not loaded: {esc(why, 2000)}")
    if not found:
        st.caption(
            "Live validation: none (the engine model's prediction was not checked against this engine)."
        )
        return
    v = found[0]
    st.subheader("Live validation against the engine")
    st.caption(
        esc(
            f"{v.created_at:%Y-%m-%d %H:%M} UTC, {v.engine.url} ({v.engine.model}); sustainable "
            f"{v.sustainable_rps:.3g} req/s ({v.sustainable_method}); lengths: {v.lengths}; knobs: "
            f"{v.knobs.source}. Targets: {v.targets}.",
            4000,
        )
    )
    rows = []
    for lv in v.levels:
        row: dict[str, Any] = {
            "load": lv.load,
            "req/s": round(lv.rate_rps, 3),
            "requests": lv.requests_measured,
        }
        for m in ("ttft", "tpot", "e2e"):
            row[f"{m.upper()} p50/p99 predicted"] = _pcts(getattr(lv.predicted, m) if lv.predicted else None)
            row[f"{m.upper()} p50/p99 measured"] = _pcts(getattr(lv.measured, m) if lv.measured else None)
        e = lv.error_pct or {}
        row["errors p50 / p99"] = ", ".join(
            f"{m.upper()} {e[f'{m}_p50']:+.0f}/{e[f'{m}_p99']:+.0f}%"
            for m in ("ttft", "tpot", "e2e")
            if f"{m}_p50" in e
        )
        if lv.prefix_block_tokens is not None:  # a replay with prefixes: the hit rate, both sides
            row["cached: engine / model"] = " / ".join(
                "-" if x is None else f"{x:.1%}"
                for x in (lv.prefix_hit_share_engine, lv.prefix_hit_share_simulated)
            )
        row["late"] = f"{lv.late_fraction:.1%}"
        row["within target"] = {True: "yes", False: "NO", None: "not judged"}[lv.within_target]
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    (st.success if v.verdict.startswith("prediction within") else st.warning)(
        f"Verdict: {esc(v.verdict, 2000)}"
    )
    for lv in v.levels:
        for d in lv.diagnosis:
            st.caption(f"load {lv.load:g}: {esc(d, 2000)}")
    _offer_recheck(run, v, folder)


def _offer_recheck(run: Run, v: LlmValidation, folder: Path) -> None:
    """Re-predict the recorded traffic with the engine model as it is now (the CLI's `validate --recheck`):
    nothing is sent, the measurements are the file's own; the result is saved beside it."""
    if not st.button(
        "Re-predict this traffic with the current engine model",
        key=f"recheck-{v.run_id}-{v.created_at:%Y%m%dT%H%M%S}",
        help="Nothing is sent to the engine: the recorded requests are simulated again.",
    ):
        return
    try:
        again = recheck(v, run, llm_validation_filename(v))
        path = save_llm_validation(again, folder)
    except (ValueError, OSError) as exc:
        st.error(f"Re-prediction failed: {esc(str(exc), 2000)}")
        return
    st.success(f"Re-predicted and saved as {esc(path.name)}. Verdict: {esc(again.verdict, 2000)}")


def show_benchmarks() -> None:
    """Imported engine benchmarks (vllm bench serve, GuideLLM, AIPerf) with each level as the tool reported it."""
    found, broken = benchmarks()
    for p, why in broken:
        st.warning(f"{esc(p.name)} was not loaded: {esc(why, 2000)}")
    if not found:
        return
    with st.expander(f"Engine benchmarks ({len(found)} imported: evidence from other load generators)"):
        for p, b in found:
            st.markdown(
                esc(f"**{b.tool} {b.tool_version}** · {b.model} · {b.engine} · hardware: {b.hardware}", 2000)
                + f" · `{esc(p.name)}`"
            )
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "level": lv.label,
                            "traffic": lv.traffic,
                            "completed": lv.completed,
                            "failed": lv.failed,
                            "req/s": lv.request_rps,
                            "TTFT p50/p99 ms": _stat(lv.ttft),
                            "TPOT p50/p99 ms": _stat(lv.tpot),
                            "ITL p50/p99 ms": _stat(lv.itl),
                            "E2E p50/p99 ms": _stat(lv.e2e),
                            "per-request records": len(lv.requests),
                        }
                        for lv in b.levels
                    ]
                ),
                hide_index=True,
            )
            for n in b.notes:
                st.caption(esc(n, 1000))
