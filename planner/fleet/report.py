"""The audit report of a plan: question, answer, evidence, prices, sensitivity, assumptions (markdown / HTML).

Written for a finance reader: every figure says whether it was measured or assumed, which run or profile
it came from, which price-book entry priced it (source and date), and what the model leaves out.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import markdown

from measure.run import Run, atomic_write_text
from planner.evidence.validation import Validation, scan_validations
from planner.fleet.escape import md_escape as esc
from planner.fleet.plan import Plan, SensitivityRow
from planner.fleet.prices import PriceBook, Pricing
from planner.fleet.ranking import PlannedOption
from planner.workers import load_run_cached

TERMS = [
    "**Replica**: one device serving requests (one GPU, or one machine like the one a CPU run was measured on).",
    "**SLO** (service-level objective): a promise about latency, e.g. p99 latency <= 150 ms means 99 of every "
    "100 requests finish within 150 ms of arriving.",
    "**p50 / p99**: the latency that half / 99% of requests stay within.",
    "**Sized / optimistic / deployed replicas**: the fewest replicas simulated as meeting every SLO with the "
    "slow end of the measurements; the same with the fast end; and what you would run after spares or headroom.",
    "**Measured vs ASSUMED**: measured figures come from a benchmark run on the device; assumed ones from a "
    "what-if profile someone wrote down. Only measured figures are evidence.",
    "**PUE**: facility energy divided by device energy (cooling and power delivery overhead).",
    "**Units per joule**: work done (tokens, images, samples) per joule of device energy.",
]

ASSUMPTIONS = [
    "Latency is simulated, not measured under load: service times are drawn from the steady-state latencies "
    "measured in isolation at each batch size (warm-up and compilation excluded). Contention between "
    "requests beyond batching (memory bandwidth shared with other tenants, host overheads outside the timed "
    "iteration) is not modelled.",
    "Sizing uses the slow end of each measured point's 95% confidence interval and, where a device kind has "
    "several runs, the slowest; the optimistic count uses the fast end and the fastest run.",
    "One replica is one device as measured (for CPU runs: the machine with the CPU count the run used).",
    "A month is 730 hours. Cloud prices are assumed to include power unless the price book says otherwise; "
    "owned devices pay electricity at the price book's $/kWh times its PUE.",
    "Energy per request = busy power at each batch size x service time + idle power x idle time, from the "
    "run's measured power; where a run has no power measurement, energy figures are absent, never estimated.",
    "The numeric-quality proxy compares each precision's outputs with fp32 on identical inputs with random "
    "weights: it flags numeric damage, it is not task accuracy.",
    "Where a run has a live validation (`fleetwise validate`), the evidence below gives its verdict; without "
    "one, the simulator's latency prediction has not been checked against live serving for that run.",
    "Routing, batching and queueing follow the simulator's documented rules (docs/planner.md, 'The serving model'); "
    "network latency, retries and failures are not modelled.",
]


def money(v: float | None) -> str:
    """Dollars with precision that suits the size (cents per request need significant digits)."""
    if v is None:
        return "-"
    if 0 < v < 1:  # three significant digits in plain decimals: finance reads $0.0000933, not 9.33e-05
        return f"${v:.{2 - math.floor(math.log10(v))}f}"
    return f"${v:,.2f}" if v < 100 else f"${v:,.0f}"


def _num(v: float | None, fmt: str = ".4g") -> str:
    return "-" if v is None else format(v, fmt)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def quality_text(o: PlannedOption) -> str:
    """The option's numeric-quality proxy vs fp32 in a few words."""
    q = o.quality
    if not q:
        return "n/a" if o.source == "assumed" else "not measured"
    if q.get("status") != "ok":
        return str(q.get("status"))
    top1 = q.get("top1_agreement")
    return f"rel. L2 {q['rel_l2_error']:.2g}" + (f", top-1 {top1:.0%}" if top1 is not None else "")


def _answer_table(plan: Plan, options: list[PlannedOption]) -> list[str]:
    head = (
        "| rank | option | source | replicas (sized / optimistic / deployed) | meets SLO | p50 ms | p99 ms | "
        "monthly cost | per 1k requests | per 1M tokens | units per J | utilization peak / mean | quality vs fp32 |"
    )
    lines = [head, "|" + "---|" * 13]
    for o in options:
        lat = o.latency_ms
        reps = (
            f"{o.replicas} / {o.replicas_optimistic} / {o.replicas_deployed}"
            if o.replicas is not None
            else "-"
        )
        cost = money(o.monthly_cost_usd) + ("" if o.cost is None or o.cost.cost_complete else " (no energy)")
        if o.not_priced:
            cost = "not priced"
        lines.append(
            f"| {o.rank or '-'} | {esc(o.label)} | {'**ASSUMED**' if o.source == 'assumed' else 'measured'} | {reps} | "
            f"{'yes' if o.meets_slo else 'no: ' + esc(o.reason or '')} | {_num(lat.p50 if lat else None)} | "
            f"{_num(lat.p99 if lat else None)} | {cost} | {money(o.cost_per_1k_requests_usd)} | "
            f"{money(o.cost_per_1m_tokens_usd)} | {_num(o.units_per_joule)} | "
            f"{_pct(o.utilization_peak)} / {_pct(o.utilization_mean)} | {esc(quality_text(o))} |"
        )
    return lines


def _evidence(plan: Plan, runs: dict[str, Run], validations: dict[str, list[Validation]]) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    for o in plan.options:
        for ev in o.evidence_ids:
            if ev in seen:
                continue
            seen.add(ev)
            run = runs.get(ev)
            if run is None:
                lines.append(f"- **ASSUMED** {esc(ev)}: an assumed profile, not a measurement")
                continue
            s, m, w = run.stack, run.methodology, run.workload
            excluded = [p for p in run.points if p.status != "ok"]
            reasons = sorted({esc(f"{p.precision} {p.status}: {p.reason}") for p in excluded})
            flagged = sorted(
                {esc(f"{p.precision} b{p.batch_size}: {', '.join(p.flags)}") for p in run.points if p.flags}
            )
            lines += [
                f"- run `{run.id}` ({_utc(run.created_at)}): {esc(w.name)} ({esc(w.unit)}), "
                f"{esc(s.device_name)} ({esc(s.device)}), torch {esc(s.torch_version)}, {s.torch_num_threads} threads, "
                f"compile {esc(s.compile_mode)}; methodology v{m.methodology_version}, timer {m.timer}, "
                f"scope {m.iteration_scope}; warm-up: first {m.warmup.min_excluded_iterations} iterations, then "
                f"{m.warmup.detection} detection, compilation excluded: {m.warmup.compilation_excluded}",
                f"  - excluded points: {'; '.join(reasons) if reasons else 'none'}",
                f"  - flagged points: {'; '.join(flagged) if flagged else 'none'}",
            ]
            for v in validations.get(run.id, []):
                lines.append(
                    f"  - live validation {_utc(v.created_at)} ({esc(v.precision)}, max_batch {v.max_batch}, "
                    f"max_delay {v.max_delay_ms:g} ms): {esc(v.verdict)}"
                )
            if run.id not in validations:
                lines.append(
                    "  - live validation: none (the simulator's prediction was not checked on this run)"
                )
    return lines


@dataclass(frozen=True)
class ReportEvidence:
    """What the report cites: runs by id, their live validations, and validation files that failed to load."""

    runs: dict[str, Run] = field(default_factory=dict)
    validations: dict[str, list[Validation]] = field(default_factory=dict)
    broken: list[tuple[Path, str]] = field(default_factory=list)


def evidence_for(paths: list[str], validations: str | Path | None = None) -> ReportEvidence:
    """The runs at these paths by id, their live validations in that folder, and the broken ones there."""
    runs = {r.id: r for r in map(load_run_cached, paths)}
    found: dict[str, list[Validation]] = {}
    broken: list[tuple[Path, str]] = []
    for i in runs:
        if validations is None:
            break
        ok, bad = scan_validations(i, validations)
        broken += bad
        if ok:
            found[i] = ok
    return ReportEvidence(runs, found, broken)


class _Priced(Protocol):
    @property
    def price_entry(self) -> str | None: ...
    @property
    def not_priced(self) -> str | None: ...


def price_lines(book: PriceBook, pricing: Pricing, options: Sequence[_Priced]) -> list[str]:
    """The price-book entries a plan's options used (source, date, energy) and the devices it could not price."""
    entries = [o.price_entry for o in options if o.price_entry is not None]
    not_priced = [o.not_priced for o in options if o.not_priced]
    lines = [
        "| device entry | pricing | $/device-hour | energy in price | source | as of |",
        "|---|---|---|---|---|---|",
    ]
    for key in dict.fromkeys(entries):
        p = book.by_key(key).price(pricing)
        lines.append(
            f"| {esc(key)} | {pricing} | {p.usd_per_hour:.4g} | {'yes' if p.energy_included else 'no'} | "
            f"{esc(p.source)} | {p.as_of} |"
        )
    for why in dict.fromkeys(not_priced):
        lines.append(f"| {esc(why, 600)} | | | | | |")
    el = book.electricity
    lines.append("")
    lines.append(
        f"Electricity: ${el.usd_per_kwh:g}/kWh, PUE {el.pue:g} (source: {esc(el.source)}; as of {el.as_of})."
    )
    if book.note:
        lines.append(f"Price book note: {esc(book.note, 4000)}.")
    return lines


def _sensitivity(rows: list[SensitivityRow]) -> list[str]:
    lines: list[str] = []
    for key in dict.fromkeys(r.option for r in rows):
        mine = [r for r in rows if r.option == key]
        lines.append(f"**{esc(mine[0].label)}**")
        lines.append("")
        for vary, title in (("growth", "traffic growth x"), ("slo", "every SLO threshold x")):
            part = [r for r in mine if r.vary == vary]
            lines.append(f"| {title} | " + " | ".join(f"{r.factor:g}" for r in part) + " |")
            lines.append("|---|" + "---|" * len(part))
            lines.append(
                "| replicas deployed | "
                + " | ".join(
                    str(r.replicas_deployed) if r.replicas_deployed is not None else "none meets"
                    for r in part
                )
                + " |"
            )
            lines.append("| monthly cost | " + " | ".join(money(r.monthly_cost_usd) for r in part) + " |")
            lines.append("")
    return lines


def render_markdown(
    plan: Plan,
    book: PriceBook,
    rows: list[SensitivityRow] | None = None,
    evidence: ReportEvidence | None = None,
) -> str:
    """The report as markdown; `evidence` (runs by id, their validations) fills the evidence section."""
    evidence = evidence or ReportEvidence()
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# Fleet sizing report: {esc(plan.scenario)}",
        "",
        f"Generated {now} by fleetwise. Figures marked **ASSUMED** come from what-if profiles, not measurements.",
        "",
        "## The question",
        "",
        f"- Traffic: {esc(plan.scenario_description or plan.scenario, 4000)}; peak {plan.peak_rate_rps:.4g} requests/s, "
        f"mean {plan.mean_rate_rps:.4g} requests/s, growth x{plan.growth:g} applied.",
        f"- Service-level objectives (all must hold at peak): {esc('; '.join(plan.slo))}.",
        f"- Sized at: {esc(plan.sized_at, 2000)}.",
        f"- Pricing: {plan.pricing}; redundancy: {plan.redundancy}; ranked by {plan.rank_by} within each group.",
        *(
            [
                f"- **Assumption**: every service time multiplied by {plan.service_scale:g} (supplied with the question)."
            ]
            if plan.service_scale != 1.0
            else []
        ),
        "",
        "## The answer",
        "",
        *[f"- {esc(line, 2000)}" for line in plan.answer.splitlines()],
        "",
    ]
    if plan.not_comparable:
        out += [f"> {esc(plan.not_comparable, 4000)}", ""]
    for g in plan.groups:
        opts = [o for o in plan.options if o.key in g.options]
        out += [
            f"### {'ASSUMED: ' if g.source == 'assumed' else ''}{esc(g.label)}",
            "",
            *_answer_table(plan, opts),
            "",
        ]
    hourly = [o for o in plan.options if o.rank == 1 and o.hourly]
    if hourly:
        out += ["## Devices over the day (best option per group)", ""]
        for o in hourly:
            out += [
                f"**{esc(o.label)}**: always-on fleet {o.replicas_deployed}, autoscaled "
                f"{o.device_hours_per_day_autoscaled:g} device-hours per day "
                f"(autoscaled monthly cost {money(o.cost_autoscaled.monthly_cost_usd if o.cost_autoscaled else None)}; "
                "saves money only where devices are rented by the hour)",
                "",
                "| hour | " + " | ".join(str(h.hour) for h in o.hourly) + " |",
                "|---|" + "---|" * len(o.hourly),
                "| requests/s | " + " | ".join(f"{h.rate_rps:.3g}" for h in o.hourly) + " |",
                "| replicas | " + " | ".join(str(h.replicas_deployed) for h in o.hourly) + " |",
                "",
            ]
    out += ["## Why not fewer", ""]
    for o in plan.options:
        if o.meets_slo and o.rank is not None and o.rank <= 3:
            b = o.below
            why = "1 replica is the fewest possible" if b is None else f"{b.replicas} replica(s): {b.reason}"
            out.append(f"- {esc(o.label)}: {esc(why, 2000)}")
    out += [
        "",
        "## Evidence",
        "",
        *_evidence(plan, evidence.runs, evidence.validations),
        *[f"- validation file {esc(p.name)} NOT LOADED: {esc(why)}" for p, why in evidence.broken],
        "",
        "## Prices used",
        "",
        *price_lines(book, plan.pricing, plan.options),
        "",
    ]
    if rows:
        out += [
            "## Sensitivity",
            "",
            "Re-sized with the same method; factor 1 is the answer above.",
            "",
            *_sensitivity(rows),
        ]
    out += ["## Assumptions and limits", "", *[f"- {a}" for a in ASSUMPTIONS], ""]
    out += ["## Terms", "", *[f"- {t}" for t in TERMS], ""]
    out += [
        f"- Simulations run: {plan.simulations}; each steady level simulated at most {plan.sizing_requests:,} arrivals; "
        f"{plan.simulations_reused} reused from another max_batch (identical), {plan.simulations_stopped_early} stopped early: {esc(plan.stopping_rule, 2000)}.",
    ]
    warns = sorted({w for o in plan.options for w in o.warnings})
    if warns:
        out += ["", "### Warnings from the simulations", "", *[f"- {esc(w, 2000)}" for w in warns]]
    if plan.skipped:
        out += ["", "### Options left out", "", *[f"- {esc(s, 2000)}" for s in plan.skipped]]
    return "\n".join(out) + "\n"


def _utc(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _renderer() -> markdown.Markdown:
    """Markdown with raw HTML, links and images switched off: the report has none of its own, so any that
    reach the page came from a file and must show as text (defence behind the escaping of every field)."""
    md = markdown.Markdown(extensions=["tables"])
    md.preprocessors.deregister("html_block")
    for name in (
        "html",
        "link",
        "image_link",
        "image_reference",
        "reference",
        "short_reference",
        "short_image_ref",
        "autolink",
        "automail",
    ):
        if name in md.inlinePatterns:
            md.inlinePatterns.deregister(name)
    return md


def render_html(md: str, title: str) -> str:
    """A self-contained HTML page (inline style, no external assets) from the markdown report."""
    body = _renderer().convert(md)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 6px}"
        "th{background:#f3f3f3}blockquote{border-left:4px solid #c90;margin:0;padding:0 1em;background:#fff8e6}"
        "code{font-size:12px}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{body}</body></html>\n"
    )


def write_report(
    path: str | Path,
    plan: Plan,
    book: PriceBook,
    rows: list[SensitivityRow] | None,
    evidence: ReportEvidence | None = None,
) -> Path:
    """Write the report atomically; `.html` gives HTML, anything else markdown."""
    md = render_markdown(plan, book, rows, evidence)
    p = Path(path)
    text = render_html(md, f"Fleet sizing: {plan.scenario}") if p.suffix.lower() in (".html", ".htm") else md
    return atomic_write_text(p, text)
