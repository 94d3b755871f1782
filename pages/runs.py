"""Runs: browse measured runs, their curves and one point's latency series; upload a new run."""

from __future__ import annotations

import html
from datetime import UTC

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from pages.common import benchmarks_dir, catalog, line, runs_dir, text_table, validations_dir
from pages.llm_runs import show_benchmarks, show_llm
from planner.evidence.bench_import import accept_benchmark_upload
from planner.evidence.catalog import accept_upload, point_series, run_curves
from planner.evidence.validation import scan_validations
from planner.fleet.escape import md_escape as esc

st.title("Measured runs")
cat = catalog()

with st.expander("Upload a run file", expanded=not cat.runs):
    up = st.file_uploader(
        "Run file (JSON written by `fleetwise measure`), or an engine benchmark: a `vllm bench serve` result, "
        "GuideLLM benchmarks.json or AIPerf profile_export_aiperf.json",
        type=["json"],
        key="upload",
    )
    hardware = st.text_input(
        "For an engine benchmark: what the engine ran on (results rarely say; it picks the price-book entry)",
        placeholder="e.g. 1x NVIDIA H200",
        max_chars=200,
        key="upload_hw",
    )
    if up is not None and st.session_state.get("upload_done") != up.file_id:
        try:
            bench = accept_benchmark_upload(up.getvalue(), benchmarks_dir(), hardware or None)
            if bench is not None:
                imported, bpath, dup = bench
                msg = (
                    f"{'Already present' if dup else 'Imported'}: {imported.tool} {esc(imported.tool_version)} "
                    f"benchmark {imported.short_id()} as {esc(bpath.name)} (see Engine benchmarks below)"
                )
            else:
                got = accept_upload(up.getvalue(), runs_dir(), cat.runs)
                msg = (
                    f"Already present: run {got.run.short_id()} is {esc(got.path.name)}"
                    if got.duplicate
                    else f"Saved run {got.run.short_id()} as {esc(got.path.name)}"
                )
        except ValueError as exc:
            st.session_state.pop("upload_msg", None)  # one message at a time: this one replaces the last
            st.error(f"Rejected, nothing saved: {esc(exc, 2000)}")
        else:
            st.session_state["upload_done"] = up.file_id
            st.session_state["upload_msg"] = msg
            st.rerun()
    if saved := st.session_state.get("upload_msg"):
        st.success(saved)

for path, why in cat.rejected:
    st.warning(f"{esc(path.name)} was not loaded: {esc(why, 2000)}")
show_benchmarks()
if not cat.runs:
    st.info(f"No runs in {esc(runs_dir())}: measure one with `fleetwise measure` or upload one above.")
    st.stop()

table = pd.DataFrame(
    [
        {
            "run": s.run.short_id(),
            "workload": s.run.workload.name,
            "device": s.run.stack.device_name,
            "stack": f"torch {s.run.stack.torch_version}, {s.run.stack.torch_num_threads} "
            + ("thread" if s.run.stack.torch_num_threads == 1 else "threads"),
            "measured (UTC)": s.run.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
            "points ok": s.ok_points,
            "other points": ", ".join(f"{k} {v}" for k, v in s.status_counts.items() if k != "ok") or "none",
            "precisions": ", ".join(s.precisions),
            "file": s.path.name,
        }
        for s in cat.runs
    ]
)
text_table(table.set_index("run"))

labels = {f"{s.run.short_id()} · {s.run.workload.name} · {s.run.stack.device_name}": s for s in cat.runs}
chosen = labels[st.selectbox("Run", list(labels), key="run_pick")]
run = chosen.run
st.caption(
    f":green[**measured**] evidence: run `{run.id}` ({esc(chosen.path.name)}); methodology v"
    f"{run.methodology.methodology_version}, timer {run.methodology.timer}, scope {run.methodology.iteration_scope}; "
    f"warm-up and compilation excluded"
)
if run.is_llm:
    show_llm(run)
    st.stop()
curves = run_curves(run)
ok = curves[curves.status == "ok"].copy()
unit = html.escape(run.workload.unit)  # goes into plotly titles, which read a subset of HTML
ok["series"] = ok.precision + ok.seq_len.map(lambda s: "" if pd.isna(s) else f" seq {int(s)}")
tput = "units_per_s" if ok.units_per_s.notna().any() else "items_per_s"
left, right = st.columns(2)
left.plotly_chart(
    line(
        ok,
        x="batch",
        y=tput,
        color="series",
        markers=True,
        log_x=True,
        title=f"Throughput ({unit}/s) vs batch: measured",
        labels={tput: f"{unit}/s"},
    ),
    key="tput",
)
lat = ok.melt(
    id_vars=["batch", "series"], value_vars=["p50_ms", "p99_ms"], var_name="percentile", value_name="ms"
)
right.plotly_chart(
    line(
        lat,
        x="batch",
        y="ms",
        color="series",
        line_dash="percentile",
        markers=True,
        log_x=True,
        log_y=True,
        title="Latency per batch (p50, p99) vs batch: measured",
    ),
    key="lat",
)
if ok.power_w.notna().any():
    left.plotly_chart(
        line(
            ok,
            x="batch",
            y="power_w",
            color="series",
            markers=True,
            log_x=True,
            title="Mean power (W) vs batch: measured",
        ),
        key="power",
    )
    right.plotly_chart(
        line(
            ok,
            x="batch",
            y="energy_j_per_item",
            color="series",
            markers=True,
            log_x=True,
            log_y=True,
            title="Energy per item (J) vs batch: measured",
        ),
        key="energy",
    )
else:
    why = getattr(run.idle_power, "unavailable", None) or "this run has no power readings"
    st.info(f"Power and energy: not measured on this run ({why}). No figure is estimated.")

if run.quality is not None:
    st.subheader("Numeric-quality proxy vs fp32 (same inputs, random weights: a proxy, not accuracy)")
    text_table(
        pd.DataFrame(
            [
                {
                    "precision": e.precision,
                    "seq": e.seq_len,
                    "status": e.status,
                    "rel. L2 error": e.rel_l2_error,
                    "cosine mean": e.cosine_similarity_mean,
                    "top-1 agreement": e.top1_agreement,
                    "note": e.reason or "",
                }
                for e in run.quality.entries
            ]
        ).set_index("precision")
    )

st.subheader("Service time after an idle gap (paced measurement)")
paced_points = [p for p in run.points if p.paced is not None and p.latency_ms is not None]
if not paced_points:
    st.warning(
        "Measured back to back only: optimistic under intermittent load (no paced measurement). Sizing from "
        "this run says so in its warnings; `fleetwise measure --pacing load=0.3,0.5,0.7,0.85` measures it."
    )
else:
    rows = []
    for p in paced_points:
        assert p.paced is not None and p.latency_ms is not None
        row: dict[str, object] = {
            "precision": p.precision,
            "batch": p.batch_size,
            "seq": p.seq_len,
            "back to back p50 ms": round(p.latency_ms.median, 4),
        }
        for b in p.paced.bins:
            row[f"after {b.gap_ms:.3g} ms: p50 ms (x b2b)"] = (
                f"{b.latency_ms.median:.3g} (x{b.latency_ms.median / p.latency_ms.median:.2f})"
                + ("" if b.converged else " *")
            )
        rows.append(row)
    text_table(pd.DataFrame(rows).set_index("precision"))
    st.caption(
        f"{esc(run.sweep.pacing or 'paced')}; * the bin hit its time limit before its CI target. The simulator "
        "draws each batch from the bin of the replica's idle time before it (mixing the two nearest bins)."
    )
contended = [p for p in run.points if "contended" in p.flags]
if contended:
    st.warning(
        "Measured while the machine was contended (usable, but possibly slow): "
        + "; ".join(
            esc(f"{p.precision} batch {p.batch_size}: {getattr(p.contention, 'reason', None) or 'contended'}")
            for p in contended
        )
    )

st.subheader("Prediction checked live")
vals, broken = scan_validations(run.id, validations_dir())
for path, why in broken:
    st.warning(f"Validation file {esc(path.name)} was not loaded: {esc(why, 2000)}")
if not vals:
    st.caption(
        "No live validation of this run: `fleetwise validate --run FILE --scenario FILE` serves it under load "
        "and compares the simulator's prediction with what was measured."
    )
for v in vals:
    st.markdown(
        f"**{v.created_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC**, {esc(v.precision)}, max_batch {v.max_batch}, "
        f"max_delay {v.max_delay_ms:g} ms, {esc(v.arrivals)}, predicted from "
        + ("curves measured around each level in the same session" if v.judged_from == "session curves"
           else "the run's curves")
        + f": {esc(v.verdict, 2000)}"
    )  # fmt: skip
    if v.canaries:
        st.caption(
            "Canary (batch 1 back to back) before each level and after the last: "
            + ", ".join(f"{c.mean_ms:.3g} ms" for c in v.canaries)
            + (f"; the first is {v.canary_vs_run:.2f}x the run's batch-1 mean" if v.canary_vs_run else "")
        )
    text_table(
        pd.DataFrame(
            [
                {
                    "load": f"{lv.load:g}",  # 0.3, not 0.3000
                    "req/s": round(lv.rate_rps, 2),
                    "p50 predicted / measured ms": f"{lv.predicted.p50_ms:.3g} / {lv.measured.p50_ms:.3g}"
                    if lv.predicted
                    else f"unstable / {lv.measured.p50_ms:.3g}",
                    "p99 predicted / measured ms": f"{lv.predicted.p99_ms:.3g} / {lv.measured.p99_ms:.3g}"
                    if lv.predicted
                    else f"unstable / {lv.measured.p99_ms:.3g}",
                    "p50 error": f"{lv.error_pct['p50_ms']:+.1f}%" if lv.error_pct else "-",
                    "p99 error": f"{lv.error_pct['p99_ms']:+.1f}%" if lv.error_pct else "-",
                    **(
                        {
                            "error from the run's curves (p50 / p99)": (
                                f"{lv.error_from_run_pct['p50_ms']:+.1f}% / {lv.error_from_run_pct['p99_ms']:+.1f}%"
                                if lv.error_from_run_pct
                                else "-"
                            )
                        }
                        if v.judged_from == "session curves"
                        else {}
                    ),
                    "judged": "drift: not judged"
                    if lv.drift
                    else {True: "yes", False: "NO", None: "not judged"}[lv.within_target],
                    "error with live batch times (p50 / p99)": (
                        f"{lv.error_live_service_pct['p50_ms']:+.1f}% / {lv.error_live_service_pct['p99_ms']:+.1f}%"
                        if lv.error_live_service_pct
                        else "-"
                    ),
                    "late > 1 ms": f"{lv.late_fraction_over_1ms:.1%}",
                }
                for lv in v.levels
            ]
        ).set_index("load")
    )
    for lv in v.levels:
        for d in lv.diagnosis:
            st.caption(f"load {lv.load:g}: {esc(d, 2000)}")

not_ok = curves[curves.status != "ok"]
if len(not_ok):
    st.caption("Points not measured, with the reason (never filled in):")
    text_table(not_ok[["precision", "batch", "seq_len", "status", "reason"]].set_index("precision"))

st.subheader("One point's latency series")
keys = [(r.precision, int(r.batch), None if pd.isna(r.seq_len) else int(r.seq_len)) for r in ok.itertuples()]
points = {f"{k[0]} batch {k[1]}" + (f" seq {k[2]}" if k[2] else ""): k for k in keys}
picked = st.selectbox(
    "Point",
    list(points),
    index=None,
    placeholder="choose a point to see every iteration, warm-up included",
    key="run_point",
)
if picked is None:
    st.stop()
key = points[picked]
warm, steady, stride = point_series(run, *key)
fig = go.Figure()
fig.add_scatter(
    x=list(range(len(warm))), y=warm, mode="markers", name="warm-up (excluded)", marker={"color": "grey"}
)
xs = [len(warm) + i * stride for i in range(len(steady))]
fig.add_scatter(x=xs, y=steady, mode="markers", name="steady state (counted)", marker={"size": 4})
if warm:
    fig.add_vrect(
        x0=-0.5,
        x1=len(warm) - 0.5,
        fillcolor="grey",
        opacity=0.15,
        line_width=0,
        annotation_text="excluded warm-up",
    )
fig.update_layout(title="Latency per iteration (ms): measured", xaxis_title="iteration", yaxis_title="ms")
st.plotly_chart(fig, key="series")
if stride > 1:
    st.caption(f"One steady sample in {stride} was kept in the file (bounded size); all were counted.")
