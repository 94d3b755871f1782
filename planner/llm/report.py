"""The audit report of an LLM plan: question, answer, every option, evidence, prices, assumptions (markdown/HTML).

The same reader as the batch report (planner/fleet/report.py): every figure says where it came from, every
file-supplied string is escaped, and what the engine model leaves out is written down.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from measure.run import Run, atomic_write_text
from planner.evidence.engine_benchmark import EngineBenchmark
from planner.evidence.llm_validation import LlmValidation, scan_llm_validations
from planner.fleet.escape import md_escape as esc
from planner.fleet.prices import PriceBook
from planner.fleet.report import money, price_lines, render_html
from planner.llm.roofline import LlmProfile, kv_tokens, weights_gb
from planner.llm.sizing import LlmPlan, LlmSized
from planner.traffic.scenario import Scenario

ASSUMPTIONS = [
    "Latency is simulated by an iteration-level continuous-batching engine model in the manner of vLLM (FCFS "
    "waiting queue, running set bounded by max_num_seqs, a token budget of max_num_batched_tokens per step, "
    "chunked prefill on or off, KV-cache admission in blocks of 16 tokens, preemption of the newest sequence by "
    "recompute); see docs/llm-serving.md.",
    "Step times are drawn from the run's measured prefill, decode and mixed steps (decode by batch and context, "
    "prefill by tokens), interpolated between measured points; steps beyond the measured grid are timed at its "
    "edge and counted in the warnings as optimistic.",
    "KV-cache capacity per replica is the run's measured memory facts (KV tokens that fit at its memory "
    "fraction) unless the question gave a number of blocks; an engine run without memory facts needs it given.",
    "Requests go to the replica with the fewest outstanding requests; network latency, tokenization outside "
    "the engine, retries and failures are not modelled.",
    "Cost per 1M input and output tokens splits the monthly cost by the engine's busy time in prefill and in "
    "decode; the all-in figure puts every dollar on the output tokens. With prefix caching, input tokens count as "
    "the engine computed them (those found cached are not counted). A month is 730 hours.",
    "Energy per token is the device energy per token measured per phase (idle power and the host excluded); "
    "where the run has none, energy figures are absent, never estimated.",
    "Where the run is an in-process measurement (not a served engine), the engine's own overheads (HTTP, "
    "scheduling, detokenization) are not in the step times: a served engine is slower per step.",
]

TERMS = [
    "**TTFT** (time to first token): from a request's arrival to its first output token.",
    "**TPOT** (time per output token): (end-to-end latency - TTFT) / (output tokens - 1), per request.",
    "**ITL** (inter-token latency): every gap between two consecutive output tokens of a request.",
    "**E2E**: arrival to last token. **Goodput**: requests per second that meet every SLO.",
    "**max_num_seqs / max_num_batched_tokens**: the engine's limits on sequences per step and tokens per step "
    "(vLLM's names). **Chunked prefill**: long prompts are split across steps, beside running decodes.",
    "**Replica**: one device serving the model as measured (one GPU, or the machine a CPU run used).",
]


def _words(model: BaseModel) -> str:
    """A scenario block as `key value` pairs (the file's own names), for a reader rather than a parser."""
    return ", ".join(f"{k} {v}" for k, v in model.model_dump(mode="json", exclude_none=True).items())


def _question(sc: Scenario, plan: LlmPlan) -> list[str]:
    assert sc.llm is not None
    lines = [
        f"- Traffic: {esc(sc.description or sc.name, 4000)}",
        f"- Arrivals: {esc(_words(sc.arrivals), 2000)}",
        f"- Prompt tokens: {esc(_words(sc.llm.prompt), 2000)}; output tokens: {esc(_words(sc.llm.output), 2000)}"
        + (f"; every length scaled by {sc.llm.scale:g}" if sc.llm.scale != 1.0 else ""),
        f"- Service-level objectives (all must hold): {esc('; '.join(plan.slos))}.",
        f"- Pricing: {plan.pricing}. Options: every run x precision x engine configuration below.",
    ]
    return lines


def _prefill(o: LlmSized) -> str:
    """The prefill cell: chunked or whole, the prefix cache and the router chosen, the prefill / decode split."""
    cell = "chunked" if o.chunked_prefill else "whole"
    if o.prefix_caching:
        hit = "" if o.prefix_hit_share is None else f", {o.prefix_hit_share:.0%} cached"
        cell += f"; prefix cache{hit}"
    if o.router:
        cell += f"; routed {o.router}"
    if o.disaggregated:
        cell += (
            f"; {o.prefill_replicas} prefill + {o.decode_replicas} decode"
            if o.prefill_replicas
            else "; disaggregated"
        )
    return cell


def _options(plan: LlmPlan) -> list[str]:
    head = (
        "| device | replica | precision | max_num_seqs | tokens/step | prefill | replicas | deployed | devices | "
        "meets SLO | SLO figures (ms) | monthly cost | $/1M input | $/1M output | $/1M output, all-in | "
        "output tokens/J | all tokens/J |"
    )
    lines = [head, "|" + "---|" * 17]
    for o in sorted(plan.options, key=lambda o: (not o.meets_slo, o.monthly_cost_usd or float("inf"))):
        figs = ", ".join(f"{k.split(' <=')[0]} {v:.3g}" for k, v in o.slo.items() if v is not None)
        lines.append(
            f"| {esc(o.shown_device)} | {esc(o.replica)} | {o.precision} | {o.max_num_seqs} | {o.max_num_batched_tokens} | "
            f"{_prefill(o)} | {o.replicas or '-'} | {o.replicas_deployed or '-'} | "
            f"{o.devices_deployed or '-'} | "
            f"{'yes' if o.meets_slo else 'no: ' + esc(o.why or '')} | {esc(figs)} | "
            f"{'not priced' if o.not_priced else money(o.monthly_cost_usd)} | {money(o.usd_per_1m_input_tokens)} | "
            f"{money(o.usd_per_1m_output_tokens)} | {money(o.usd_per_1m_output_tokens_all_in)} | "
            f"{_num(o.output_tokens_per_joule)} | {_num(o.total_tokens_per_joule)} |"
        )
    return lines


def _bench_options(plan: LlmPlan) -> list[str]:
    if not plan.from_benchmarks:
        return []
    lines = [
        "",
        "From imported engine benchmarks (the tool's own measurements at each level, one curve per engine, model, "
        "hardware and replica shape, interpolated between levels; nothing simulated):",
        "",
        "| benchmark files | hardware | replica | capacity between | req/s per replica | replicas | devices | "
        "meets SLO | SLO figures at the capacity (ms) | monthly cost | $/1M output, all-in |",
        "|" + "---|" * 11,
    ]
    for x in plan.from_benchmarks:
        figs = ", ".join(f"{k.split(' <=')[0]} {v:.3g}" for k, v in x.slo.items() if v is not None)
        files = ", ".join(f"`{i.removeprefix('sha256:')[:12]}`" for i in x.benchmark_ids)
        between = " and ".join(esc(v) for v in (x.level, x.capacity_above) if v) or "-"
        lines.append(
            f"| {x.tool} {files} | {esc(x.hardware)} | {esc(x.replica)} | {between} | "
            f"{_num(x.capacity_rps)} | {x.replicas or '-'} | {x.devices or '-'} | "
            f"{'yes' if x.meets_slo else 'no: ' + esc(x.why or '')} | {esc(figs)} | "
            f"{'not priced' if x.not_priced else money(x.monthly_cost_usd)} | "
            f"{money(x.usd_per_1m_output_tokens_all_in)} |"
        )
    return lines


def _bench_evidence(plan: LlmPlan, benchmarks: dict[str, EngineBenchmark]) -> list[str]:
    lines: list[str] = []
    for x in plan.from_benchmarks:
        used = {v for v in (x.level, x.capacity_above) if v}
        for bid in x.benchmark_ids:
            b = benchmarks.get(bid)
            if b is None:
                lines.append(f"- engine benchmark `{bid}` ({x.tool}): the file was not given to the report")
                continue
            lines.append(
                f"- engine benchmark `{b.id}`: {b.tool} {esc(b.tool_version)} ({esc(b.tool_format)}), original file "
                f"sha256 {b.source_sha256}, imported {b.imported_at.astimezone(UTC):%Y-%m-%d %H:%M UTC}; model "
                f"{esc(b.model)}, engine {esc(b.engine)}, hardware {esc(b.hardware)}; a replica is "
                f"{b.replica.label()} ({esc(b.replica.source)})"
            )
            for lv in b.levels:
                name = f"{b.tool} {b.short_id()} {lv.label}"
                role = (
                    " **(the capacity used)**" if name == x.level and not x.capacity_above
                    else " **(the capacity lies between this level and the next)**" if name in used
                    else "" if name in x.curve else " (not on the curve: other traffic)"
                )  # fmt: skip
                rate = lv.request_rps or lv.rate_rps
                ttft = lv.ttft.p99 if lv.ttft is not None else None
                lines.append(
                    f"  - level {esc(lv.label)}{role}: {_num(rate)} req/s, {lv.completed} completed, "
                    f"p99 TTFT {_num(ttft)} ms"
                )
    return lines


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _profile(p: LlmProfile) -> list[str]:
    s, d, e = p.shape, p.sheet, p.efficiency
    return [
        f"- **ASSUMED** profile `{esc(p.name)}` (not measured, never evidence): {esc(s.name)} on {p.tensor_parallel}x "
        f"{esc(d.name)} at {p.precision}",
        f"  - model: {s.parameters():,} parameters, {s.num_hidden_layers} layers, {s.num_key_value_heads} KV heads "
        f"of {s.hd}; weights {weights_gb(p):,.1f} GB; KV {s.kv_bytes_per_token(p.precision):,} bytes/token; "
        f"{kv_tokens(p):,} KV tokens fit a replica ({esc(s.source, 1000)})",
        f"  - device: {d.memory_gb:g} GB, {d.memory_bandwidth_gbps:g} GB/s, {d.peak_tflops.get(p.precision, 0):g} "
        f"TFLOPS at {p.precision}, interconnect {d.interconnect_gbps or '-'} GB/s ({esc(d.source, 1000)})",
        f"  - efficiencies: prefill {e.prefill_compute:g}, decode {e.decode_compute:g}, memory {e.memory_bandwidth:g}, "
        f"interconnect {e.interconnect:g}, all-reduce {e.allreduce_latency_us:g} us, step overhead "
        f"{e.step_overhead_ms:g} ms, memory fraction {e.memory_fraction:g} ({esc(e.source, 1000)})",
        "  - its error against measured runs: docs/llm-roofline.md (a roofline leaves out framework overheads)",
    ]


def _evidence(
    runs: dict[str, Run | LlmProfile], options: list[LlmSized], validations: dict[str, list[LlmValidation]]
) -> list[str]:
    lines: list[str] = []
    for run_id in dict.fromkeys(o.run_id for o in options):
        run = runs[run_id]
        if isinstance(run, LlmProfile):
            lines += _profile(run)
            continue
        s, facts = run.stack, run.llm
        kinds: dict[str, int] = {}
        for p in run.points:
            if p.phase is not None and p.status == "ok":
                kinds[p.phase] = kinds.get(p.phase, 0) + 1
        source = "served engine" if any(p.source == "engine" for p in run.points) else "in-process"
        lines.append(
            f"- run `{run.id}` ({run.created_at.astimezone(UTC):%Y-%m-%d %H:%M UTC}): {esc(run.workload.name)}, "
            f"{esc(s.device_name)} ({esc(s.device)}), torch {esc(s.torch_version)}; {source}; measured steps: "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        )
        if facts is not None:
            shape = facts.shape
            if shape is not None:
                lines.append(
                    f"  - model {esc(shape.name)}: {shape.parameters:,} parameters, {shape.num_hidden_layers} "
                    f"layers, weights {facts.weights} ({esc(facts.weights_note, 1000)})"
                )
            for m in facts.memory:
                lines.append(
                    f"  - {m.precision}: KV {m.kv_bytes_per_token:,} bytes/token ({esc(m.kv_method)}); KV tokens "
                    f"that fit: {esc(str(m.kv_tokens_fit))} ({esc(m.kv_tokens_fit_method)})"
                )
            if facts.engine is not None:
                e = facts.engine
                lines.append(
                    f"  - engine at {esc(e.url)}, model {esc(e.model)}, version {esc(str(e.version))}, "
                    f"params {esc(str(e.params), 2000)}"
                )
            lines.append(f"  - energy: {esc(facts.energy_note or 'measured per phase', 1000)}")
        found = validations.get(run_id, [])
        for v in found:
            lines.append(
                f"  - live validation {v.created_at.astimezone(UTC):%Y-%m-%d %H:%M UTC} against {esc(v.engine.url)} "
                f"(loads {', '.join(f'{lv.load:g}' for lv in v.levels)} of {v.sustainable_rps:.3g} req/s): "
                f"{esc(v.verdict, 2000)}"
            )
        if not found:
            lines.append(
                "  - live validation of the engine model on this run: none (the prediction was not checked against "
                "a live engine for it)"
            )
    return lines


def render_llm_markdown(
    plan: LlmPlan,
    sc: Scenario,
    book: PriceBook,
    runs: dict[str, Run | LlmProfile],
    validations: dict[str, list[LlmValidation]] | None = None,
    benchmarks: dict[str, EngineBenchmark] | None = None,
) -> str:
    """The report as markdown; `runs` (by id) are the runs the plan's options name, `validations` their live
    validations (by run id), `benchmarks` (by id) the engine benchmarks it sized from."""
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        f"# LLM fleet sizing report: {esc(plan.scenario)}",
        "",
        f"Generated {now} by fleetwise. "
        + (
            "**Options marked ASSUMED are timed by a roofline of datasheet figures, not measured.**"
            if any(o.source == "assumed" for o in plan.options)
            else "Every option's step times were measured."
        ),
        "",
        "## The question",
        "",
        *_question(sc, plan),
        "",
        "## The answer",
        "",
        f"- {esc(plan.answer, 2000)}",
        "",
        "## Every option",
        "",
        *(_options(plan) if plan.options else ["No option from measured step times (no LLM run was given)."]),
        *_bench_options(plan),
        "",
        "## Evidence",
        "",
        *_evidence(runs, plan.options, validations or {}),
        *_bench_evidence(plan, benchmarks or {}),
        "",
        "## Prices used",
        "",
        *price_lines(book, plan.pricing, [*plan.options, *plan.from_benchmarks]),
        "",
        "## Assumptions and limits",
        "",
        *[f"- {a}" for a in ASSUMPTIONS],
        "",
        "## Terms",
        "",
        *[f"- {t}" for t in TERMS],
        "",
        f"- Simulations run: {sum(o.simulations for o in plan.options)}"
        + (
            f"; {len(plan.from_benchmarks)} engine benchmark(s) read as measured by their tool, not simulated."
            if plan.from_benchmarks
            else "."
        ),
    ]
    warns = list(dict.fromkeys([*plan.notes, *(w for o in plan.options for w in o.warnings)]))
    if warns:
        out += ["", "### Warnings from the simulations", "", *[f"- {esc(w, 2000)}" for w in warns]]
    return "\n".join(out) + "\n"


def write_llm_report(
    path: str | Path,
    plan: LlmPlan,
    sc: Scenario,
    book: PriceBook,
    runs: dict[str, Run | LlmProfile],
    validations: dict[str, list[LlmValidation]] | None = None,
    benchmarks: dict[str, EngineBenchmark] | None = None,
) -> Path:
    """Write the report atomically; `.html` gives HTML, anything else markdown."""
    md = render_llm_markdown(plan, sc, book, runs, validations, benchmarks)
    p = Path(path)
    html_out = p.suffix.lower() in (".html", ".htm")
    return atomic_write_text(p, render_html(md, f"LLM fleet sizing: {plan.scenario}") if html_out else md)


def llm_validations_for(run_ids: list[str], folder: str | Path) -> dict[str, list[LlmValidation]]:
    """Each run's readable LLM validations in folder (newest first)."""
    return {i: found for i in run_ids if (found := scan_llm_validations(i, folder)[0])}
