"""Live validations (batch and LLM) and their findings, as tables and lines."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rich.markup import escape
from rich.table import Table

from fleetwise_cli.common import out
from planner.evidence.llm_validation import (
    LlmValidation,
)
from planner.evidence.validation import (
    Validation,
)


class _Judged(Protocol):
    @property
    def load(self) -> float: ...
    @property
    def diagnosis(self) -> list[str]: ...


def print_findings(levels: Sequence[_Judged], verdict: str) -> None:
    """A validation's reasons per load level, then its verdict (batch and LLM validations alike)."""
    for lv in levels:
        for d in lv.diagnosis:
            out.print(f"[yellow]load {lv.load:g}:[/] {escape(d)}", highlight=False, soft_wrap=True)
    out.print(f"[bold]verdict[/]: {escape(verdict)}", highlight=False, soft_wrap=True)


def print_llm_validation(v: LlmValidation) -> None:
    """Predicted vs measured TTFT/TPOT/E2E per level, the errors, generator lag, and reasons for misses."""
    t = Table(
        title=escape(
            f"run {v.run_id.removeprefix('sha256:')[:12]} {v.precision} vs {v.engine.url} ({v.engine.model}); "
            f"sustainable {v.sustainable_rps:.3g} req/s"
        ),
        title_justify="left",
    )
    for c in (
        "load",
        "req/s",
        "TTFT p50/p99 pred | meas",
        "TPOT p50/p99 pred | meas",
        "E2E p50/p99 pred | meas",
    ):
        t.add_column(c)
    prefixed = any(lv.prefix_block_tokens is not None for lv in v.levels)
    for c in ("errors p50 / p99", *(["cached: engine | model"] if prefixed else []), "late", "ok"):
        t.add_column(c)
    for lv in v.levels:
        cells = []
        for m in ("ttft", "tpot", "e2e"):
            p = getattr(lv.predicted, m) if lv.predicted else None
            q = getattr(lv.measured, m) if lv.measured else None
            pred = f"{p.p50_ms:.3g}/{p.p99_ms:.3g}" if p else "unstable"
            meas = f"{q.p50_ms:.3g}/{q.p99_ms:.3g}" if q else "-"
            cells.append(f"{pred} | {meas}")
        e = lv.error_pct or {}
        errs = ", ".join(
            f"{m.upper()} {e[f'{m}_p50']:+.0f}/{e[f'{m}_p99']:+.0f}%"
            for m in ("ttft", "tpot", "e2e")
            if f"{m}_p50" in e and f"{m}_p99" in e
        )
        t.add_row(
            f"{lv.load:g}",
            f"{lv.rate_rps:.3g}",
            *cells,
            errs or "-",
            *(
                [
                    " | ".join(
                        "-" if x is None else f"{x:.1%}"
                        for x in (lv.prefix_hit_share_engine, lv.prefix_hit_share_simulated)
                    )
                ]
                if prefixed
                else []
            ),
            f"{lv.late_fraction:.1%}" + (" [red]LAG[/]" if lv.generator_flag else ""),
            {True: "[green]yes[/]", False: "[red]NO[/]", None: "not judged"}[lv.within_target],
        )
    out.print(t)
    print_findings(v.levels, v.verdict)


def _pair(err: dict[str, float] | None) -> str:
    return "-" if err is None else f"{err['p50_ms']:+.1f}% / {err['p99_ms']:+.1f}%"


def print_validation(v: Validation) -> None:
    """Predicted vs measured per level, errors, generator lag, and the reasons where the error is large."""
    session = v.judged_from == "session curves"
    t = Table(
        title=f"run {v.run_id.removeprefix('sha256:')[:12]} {escape(v.precision)}, max_batch {v.max_batch}, "
        f"max_delay {v.max_delay_ms:g} ms, {escape(v.arrivals)}; predicted from "
        + ("curves measured around each level in this session" if session else "the run's curves"),
        title_justify="left",
    )
    for c in ("load", "req/s", "p50 pred/meas", "p90 pred/meas", "p99 pred/meas", "tput pred/meas"):
        t.add_column(c)
    paced = any(lv.error_back_to_back_pct is not None for lv in v.levels)
    extra = (["err from run's curves"] if session else []) + (["err back-to-back only"] if paced else [])
    for c in ("p50 err", "p99 err", *extra, "err w/ live svc"):
        t.add_column(c)
    for c in ("late>1ms", "batch live/pred", "ok"):
        t.add_column(c)
    for lv in v.levels:
        p, m, e = lv.predicted, lv.measured, lv.error_pct

        def pm(k: str, p: object = p, m: object = m) -> str:
            return (
                f"{getattr(p, k):.3g} / {getattr(m, k):.3g}"
                if p is not None
                else f"unstable / {getattr(m, k):.3g}"
            )

        t.add_row(
            f"{lv.load:g}",
            f"{lv.rate_rps:.4g}",
            pm("p50_ms"),
            pm("p90_ms"),
            pm("p99_ms"),
            pm("throughput_rps"),
            "-" if e is None else f"{e['p50_ms']:+.1f}%",
            "-" if e is None else f"{e['p99_ms']:+.1f}%",
            *([_pair(lv.error_from_run_pct)] if session else []),
            *([_pair(lv.error_back_to_back_pct)] if paced else []),
            "-"
            if lv.error_live_service_pct is None
            else f"{lv.error_live_service_pct['p50_ms']:+.1f}% / {lv.error_live_service_pct['p99_ms']:+.1f}%",
            f"{lv.late_fraction_over_1ms:.1%}" + (" [red]LAG[/]" if lv.generator_flag else ""),
            f"{lv.mean_batch_live:.2f} / {lv.mean_batch_predicted or 0:.2f}",
            "drift: not judged"
            if lv.drift
            else {True: "[green]yes[/]", False: "[red]NO[/]", None: "not judged"}[lv.within_target],
        )
    out.print(t)
    if v.canaries:
        ratio = f"; first {v.canary_vs_run:.2f}x the run's batch-1 mean" if v.canary_vs_run else ""
        out.print(
            "canary (batch 1 back to back) before each level and after the last: "
            + ", ".join(f"{c.mean_ms:.3g}±{c.ci_half_ms:.2g}" for c in v.canaries)
            + f" ms{ratio}",
            highlight=False,
            soft_wrap=True,
        )
    print_findings(v.levels, v.verdict)
