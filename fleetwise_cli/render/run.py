"""A run as tables: the summary, points, pacing, soak, and an LLM run's phases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out
from measure.run import (
    ONE_DEVICE,
    PHASES,
    Point,
    Run,
    Unavailable,
)

if TYPE_CHECKING:  # the planner is imported only when a run needs it
    from planner.llm.engine import EngineConfig


def print_pacing(run: Run) -> None:
    """The paced bins of every point (service time by idle gap before the batch), or why there are none."""
    paced = [p for p in run.points if p.paced is not None]
    if not paced:
        out.print(
            "pacing: not measured (back to back only: optimistic under intermittent load; measure with --pacing)",
            highlight=False,
        )
        return
    title = f"service time after an idle gap ({run.sweep.pacing or 'paced'}): p50 ms [x back to back]"
    t = Table(title=escape(title))
    first = paced[0].paced
    assert first is not None
    # load mode: each load's gap follows the point's own service time, so columns are loads, cells say the gap
    heads = [f"load {x:g}" for x in first.loads or []] if first.mode == "load" else []
    for col in [
        "precision",
        "batch",
        "seq",
        "back to back",
        *(heads or [f"{b.gap_ms:g} ms" for b in first.bins]),
    ]:
        t.add_column(col, overflow="fold")
    for p in paced:
        assert p.paced is not None and p.latency_ms is not None
        b2b = p.latency_ms.median
        cells = [
            escape(
                (f"after {b.gap_ms:.3g} ms: " if heads else "")
                + f"{_fmt(b.latency_ms.median)} [x{b.latency_ms.median / b2b:.2f}]"
                + ("" if b.converged else " *")
            )
            for b in p.paced.bins
        ]
        t.add_row(p.precision, str(p.batch_size), str(p.seq_len or "-"), _fmt(b2b), *cells)
    t.caption = "* the bin hit its time limit before its CI target (the run file has its verdict)"
    out.print(t)


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def summary_table(run: Run) -> Table:
    """One row per measured point; points not run for the same reason share one row (batch range)."""
    t = Table(title=escape(f"{run.workload.name} on {run.stack.device_name} ({run.stack.device})"))
    unit = escape(run.workload.unit)
    for col in (
        "precision",
        "batch",
        "seq",
        "status",
        "warm/meas",
        "p50 ms",
        "p99 ms [95% CI]",
        "mean ±CI",
        "items/s",
        f"{unit}/s",
        "TFLOP/s",
        "W",
        f"mJ/{unit.rstrip('s') or unit}",
        "vs fp32 err, top-1",
        "notes",
    ):
        t.add_column(col, overflow="fold")
    quality = _quality_cells(run)
    for group in _groups(run.points):
        row = _point_row(group[0])
        if len(group) > 1:
            row[1] = f"{group[0].batch_size}-{group[-1].batch_size}"
        row.insert(-1, quality.get((group[0].precision, group[0].seq_len), "-"))
        t.add_row(*row)
    t.caption = _power_caption(run)
    return t


def _quality_cells(run: Run) -> dict[tuple[str, int | None], str]:
    if run.quality is None:
        return {}
    cells: dict[tuple[str, int | None], str] = {}
    for q in run.quality.entries:
        if q.status != "ok":
            cells[(q.precision, q.seq_len)] = f"{q.status}"
            continue
        top1 = "" if q.top1_agreement is None else f", {q.top1_agreement:.0%}"
        cells[(q.precision, q.seq_len)] = f"{q.rel_l2_error:.1e}{top1}"
    return cells


def _power_caption(run: Run) -> str:
    idle = run.idle_power
    if idle is None:
        return "power: not measured (run format version 1)"
    if isinstance(idle, Unavailable):
        return escape(f"power and energy unavailable: {idle.unavailable}")
    return escape(
        f"idle power {idle.power_w:.1f} W ({idle.method}, {idle.window_s:.1f} s); W and mJ cover {idle.domain}"
    )


def _groups(points: list[Point]) -> list[list[Point]]:
    """Consecutive points that were not measured for the same reason, grouped; measured points alone."""
    groups: list[list[Point]] = []
    for p in points:
        prev = groups[-1][-1] if groups else None
        same = (
            prev is not None
            and p.latency_ms is None
            and prev.latency_ms is None
            and (p.precision, p.seq_len, p.status, p.reason)
            == (prev.precision, prev.seq_len, prev.status, prev.reason)
        )
        if same:
            groups[-1].append(p)
        else:
            groups.append([p])
    return groups


def _point_row(p: Point) -> list[str]:
    base = [p.precision, str(p.batch_size), str(p.seq_len or "-")]
    colour = {"ok": "green", "unstable": "yellow", "oom": "magenta", "unsupported": "dim", "failed": "red"}[
        p.status
    ]
    status = f"[{colour}]{p.status}[/]"
    if p.latency_ms is None:
        return [*base, status, "-", "-", "-", "-", "-", "-", "-", "-", "-", escape(p.reason or "")]
    lat = p.latency_ms
    ci = "n/a" if lat.mean_ci95_halfwidth_rel is None else f"±{lat.mean_ci95_halfwidth_rel:.1%}"
    hi = _fmt(lat.p99_ci95_high) if lat.p99_ci95_high is not None else "n/a"
    notes = escape(", ".join([*p.flags, *([p.reason] if p.reason else [])]))
    return [
        *base,
        status,
        f"{p.warmup_iterations_excluded}/{p.measured_iterations}",
        _fmt(lat.median),
        f"{_fmt(lat.p99)} [{_fmt(lat.p99_ci95_low)}, {hi}]",
        ci,
        _fmt(p.throughput_items_per_s, 4),
        _fmt(p.throughput_units_per_s, 4),
        _fmt(p.achieved_tflops),
        *_energy_cells(p),
        notes,
    ]


def soak_table(run: Run) -> Table:
    """The soak's windows (at most 12 rows, evenly spaced) and its verdict as the caption."""
    assert run.soak is not None
    soak = run.soak
    t = Table(
        title=f"soak: {soak.duration_s:.0f} s in {soak.window_s:g} s windows (early: first {soak.early_s:g} s)"
    )
    for col in ("window s", "items/s", "p50 ms", "p99 ms", "W", "mJ/item", "SM MHz", "max °C", "reasons"):
        t.add_column(col)
    idx = np.unique(np.linspace(0, len(soak.windows) - 1, min(12, len(soak.windows))).round().astype(int))
    for i in idx:
        w = soak.windows[int(i)]
        t.add_row(
            f"{_fmt(w.start_s)}-{_fmt(w.end_s)}",
            _fmt(w.throughput_items_per_s, 4),
            _fmt(w.latency_p50_ms),
            _fmt(w.latency_p99_ms),
            _fmt(w.power_mean_w),
            _fmt(w.energy_per_item_j * 1000 if w.energy_per_item_j is not None else None),
            _fmt(w.sm_clock_mean_mhz, 4),
            _fmt(w.temperature_max_c),
            escape(", ".join(w.reasons_seen)),
        )
    t.caption = escape(soak.verdict)
    return t


def _energy_cells(p: Point) -> list[str]:
    tel = p.telemetry
    if tel is None or isinstance(tel, Unavailable):
        return ["-", "-"]
    watts = "-" if isinstance(tel.power_w, Unavailable) else f"{tel.power_w.mean_w:.1f}"
    e = tel.energy
    if isinstance(e, Unavailable):
        return [watts, "-"]
    per = e.energy_per_unit_j if e.energy_per_unit_j is not None else e.energy_per_item_j
    return [watts, f"{per * 1000:.3g}"]


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _phase_table(run: Run, phase: str, points: list[Point]) -> Table:
    engine = points[0].source == "engine"
    size = {"prefill": "prompt tokens", "decode": "context", "mixed": "context + chunk"}[phase]
    batch = "concurrency" if engine else "batch"
    what = {
        "prefill": "TTFT" if engine else "prefill step",
        "decode": "inter-token gap" if engine else "decode step",
    }
    t = Table(
        title=escape(
            f"{phase}: {what.get(phase, 'mixed step')} latency ({run.workload.name}, {run.stack.device_name})"
        )
    )
    for col in (
        "precision",
        batch,
        size,
        "status",
        "n",
        "p50 ms",
        "p99 ms [95% CI]",
        "mean ±CI",
        "tokens/s",
        "mJ/token",
        "notes",
    ):
        t.add_column(col, overflow="fold")
    for p in points:
        where = {
            "prefill": str(p.seq_len)
            if p.cached_tokens is None
            else f"{p.seq_len} after {p.cached_tokens} cached",
            "decode": str(p.context_tokens),
            "mixed": f"{p.context_tokens} + {p.chunk_tokens}",
        }[phase]
        notes = [*p.flags, *([p.reason] if p.reason else [])]
        if p.engine is not None and (p.engine.early_ends or p.engine.failed):
            notes.append(f"{p.engine.early_ends} early ends, {p.engine.failed} failed of {p.engine.requests}")
        if p.latency_ms is None:
            t.add_row(
                p.precision,
                str(p.batch_size),
                where,
                p.status,
                "-",
                "-",
                "-",
                "-",
                "-",
                "-",
                escape("; ".join(notes)),
            )
            continue
        lat = p.latency_ms
        ci = "n/a" if lat.mean_ci95_halfwidth_rel is None else f"±{lat.mean_ci95_halfwidth_rel:.1%}"
        energy = "-"
        tel = p.telemetry
        if tel is not None and not isinstance(tel, Unavailable) and not isinstance(tel.energy, Unavailable):
            per = tel.energy.energy_per_unit_j
            energy = _f(per * 1000 if per is not None else None)
        t.add_row(
            p.precision,
            str(p.batch_size),
            where,
            p.status,
            str(p.measured_iterations),
            _f(lat.median),
            f"{_f(lat.p99)} [{_f(lat.p99_ci95_low)}, {_f(lat.p99_ci95_high)}]",
            ci,
            _f(p.throughput_units_per_s, 4),
            energy,
            escape("; ".join(notes)),
        )
    return t


def print_llm(run: Run) -> None:
    """The three step tables, the memory facts, energy per phase and the engine's self-description."""
    for phase in PHASES:
        mine = [p for p in run.points if p.phase == phase]
        if mine:
            out.print(_phase_table(run, phase, mine))
    facts = run.llm
    if facts is None:
        return
    if facts.shape is not None:
        s = facts.shape
        out.print(
            escape(
                f"model {s.name}: {s.num_hidden_layers} layers, hidden {s.hidden_size}, {s.num_attention_heads} heads / "
                f"{s.num_key_value_heads} KV heads, {s.parameters / 1e6:.1f}M parameters; {facts.weights_note}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    if facts.memory:
        t = Table(title=f"memory at {facts.memory_fraction:g} of device memory")
        for col in (
            "precision",
            "KV bytes/token",
            "weights MiB",
            "activation peak MiB",
            "KV tokens that fit",
            "how",
        ):
            t.add_column(col, overflow="fold")
        for m in facts.memory:
            act = (
                "n/a"
                if isinstance(m.activation_peak_bytes, Unavailable)
                else f"{m.activation_peak_bytes / 2**20:.1f}"
            )
            fit = (
                m.kv_tokens_fit.unavailable
                if isinstance(m.kv_tokens_fit, Unavailable)
                else f"{m.kv_tokens_fit:,}"
            )
            t.add_row(
                m.precision,
                f"{m.kv_bytes_per_token:,}",
                f"{m.weight_bytes / 2**20:.1f}",
                act,
                escape(fit),
                escape(m.kv_tokens_fit_method),
            )
        out.print(t)
    if facts.energy and not facts.energy_note:
        cells = [
            f"{e.precision} {e.phase}: "
            + (
                e.j_per_token.unavailable
                if isinstance(e.j_per_token, Unavailable)
                else f"{e.j_per_token * 1000:.3g} mJ/token"
            )
            for e in facts.energy
        ]
        out.print(
            escape("energy per phase (median over points): " + "; ".join(cells)),
            highlight=False,
            soft_wrap=True,
        )
    elif facts.energy_note:
        out.print(escape(facts.energy_note), highlight=False, soft_wrap=True)
    shape = facts.replica or ONE_DEVICE
    out.print(
        escape(
            f"a replica is {shape.label()} ({'not recorded: ' if facts.replica is None else ''}{shape.source})"
        ),
        highlight=False,
        soft_wrap=True,
    )
    if facts.engine is not None:
        e = facts.engine
        served = (
            e.served_models.unavailable
            if isinstance(e.served_models, Unavailable)
            else ", ".join(e.served_models)
        )
        version = e.version.unavailable if isinstance(e.version, Unavailable) else e.version
        params = ", ".join(f"{k}={v}" for k, v in e.params.items()) or "none given"
        out.print(
            escape(
                f"engine {e.url} model {e.model}; serves: {served}; version: {version}; engine params: {params}"
            ),
            highlight=False,
            soft_wrap=True,
        )
        if isinstance(e.startup, Unavailable):
            out.print(escape(f"engine start-up: not timed ({e.startup.unavailable})"), highlight=False)
        elif e.startup is not None:
            out.print(
                escape(
                    f"engine start-up: {e.startup.seconds:.1f} s to the first token "
                    f"({e.startup.answered_after_s:.1f} s to its first answer; {e.startup.how})"
                ),
                highlight=False,
                soft_wrap=True,
            )


def _engine_knobs(run: Run) -> EngineConfig:
    """The knobs the run's engine said it ran with (its --engine-param max_num_seqs, max_num_batched_tokens,
    block_size, num_gpu_blocks), vLLM's defaults and an unbounded KV cache for those it did not say."""
    from planner.llm.engine import EngineConfig

    said = run.llm.engine.params if run.llm is not None and run.llm.engine is not None else {}

    def whole(key: str, default: int, most: int) -> int:
        v = said.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= most else default

    return EngineConfig(
        max_num_seqs=whole("max_num_seqs", 256, 1 << 20),
        max_num_batched_tokens=whole("max_num_batched_tokens", 8192, 1 << 24),
        block_size=whole("block_size", 16, 1 << 16),
        kv_blocks=whole("num_gpu_blocks", 10**7, 10**9),
    )


def print_counter_checks(run: Run) -> None:
    """An engine run whose /metrics were read: each setting's steps as the engine counted them, beside the engine
    model replaying the same closed loop with the knobs the run recorded (vLLM's defaults where it did not)."""
    from planner.llm.engine_counters import check_counters
    from planner.llm.steps import StepModelError

    precisions = sorted({p.precision for p in run.points if p.engine is not None and p.engine.counters})
    for prec in precisions:
        try:
            checks = check_counters(run, prec, _engine_knobs(run))
        except StepModelError as exc:
            out.print(f"[yellow]engine counters not checked:[/] {escape(str(exc))}", highlight=False)
            continue
        t = Table(
            title=f"the engine's counters against the engine model ({prec}; the same closed loops replayed)"
        )
        for col in ("prompt", "concurrency", "requests", "counted over", "engine steps", "model steps",
                    "steps error", "engine mean batch", "model mean batch", "preemptions"):  # fmt: skip
            t.add_column(col)
        for c in checks:
            t.add_row(
                str(c.prompt_tokens),
                str(c.concurrency),
                str(c.requests),
                f"{c.window_s:.2f} s steady" if c.window_s is not None else "the setting",
                f"{c.engine_steps:,.0f}",
                f"{c.simulated_steps:,}",
                f"{c.steps_error_pct:+.1f}%",
                _f(c.engine_mean_batch),
                _f(c.simulated_mean_batch),
                _f(c.engine_preemptions),
            )
        out.print(t)
