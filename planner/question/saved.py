"""Saved plans, and plans side by side: H100 against H200, on-demand against reserved against owned, this
quarter's answer against last quarter's.

A saved plan is a versioned, content-addressed file holding the question (the scenario in full, the evidence
named, the knobs), the answer sentence, the whole plan as sized, and one row per option in the few figures
that compare across plans of either kind (batch or generative): replicas and devices bought, $ a month, $ per
1M tokens, tokens per joule, each SLO's margin (observed / threshold: under 1 is met), and where the option's
figures come from (measured, ASSUMED, or an engine benchmark). Comparing never re-sizes anything: it reads the
files. Totals over years are the monthly cost x 12 x years at the plan's prices (no discounting, no price
changes), which is what "1-3 year total cost" means here.

Schema history: 1 - first version.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from measure.run import CreatedAt
from measure.run.types import FileModel, ResultModel
from measure.run.versioned import VersionedFile, canonical_id
from planner.fleet.plan import Plan
from planner.llm.sizing import LlmPlan
from planner.question.request import SizingRequest
from planner.traffic.scenario import Scenario

MAX_PLAN_BYTES = 32 * 1024 * 1024
MAX_ROWS = 10_000
Source = Literal["measured", "assumed", "benchmark"]


class SavedPlanError(ValueError):
    """A saved plan that cannot be read or compared; one line naming the problem."""


class PlanRow(ResultModel):
    """One option of a saved plan in the figures every plan shares."""

    option: str
    source: Source
    device: str
    replica: str  # what one replica is: "1 device", "8 devices (TP 8)"
    replicas: int | None  # deployed (after redundancy)
    devices: int | None  # what is bought: replicas x devices per replica
    meets_slo: bool
    monthly_usd: float | None
    usd_per_1m_tokens: float | None  # generative: every dollar on the output tokens; batch: per 1M tokens
    usd_per_1k_requests: float | None
    tokens_per_joule: float | None  # device energy; None where not measured
    slo_margin: dict[str, float | None]  # SLO label -> observed / threshold (< 1: met)
    best: bool  # the option the plan's answer names


class SavedPlan(FileModel):
    """A plan as sized, with its question, kept to compare with others."""

    schema_version: Literal[1] = 1
    kind: Literal["saved-plan"] = "saved-plan"
    id: str = Field(default="", description="sha256 of the canonical JSON of every field but id and saved_at")
    name: str = Field(min_length=1, max_length=200)
    saved_at: CreatedAt
    scenario: Scenario
    plan_kind: Literal["batch", "llm"]
    pricing: str = Field(max_length=32)
    question: dict[str, Any]
    answer: str = Field(max_length=20_000)
    rows: list[PlanRow] = Field(max_length=MAX_ROWS)
    plan: dict[str, Any]

    def content_id(self) -> str:
        return _content_id(self.model_dump(mode="json"))

    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    def best_rows(self) -> list[PlanRow]:
        """The options the answer names (one per comparable group), else none."""
        return [r for r in self.rows if r.best]


def _content_id(data: dict[str, Any]) -> str:
    return canonical_id(data, ("id", "saved_at"))


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "plan"


def plan_filename(p: SavedPlan) -> str:
    """plan-<name>-<short id>.json."""
    return f"plan-{_slug(p.name)}-{p.short_id()}.json"


def _id_matches(p: SavedPlan, stored: dict[str, Any]) -> str | None:
    return None if p.id == _content_id(stored) else "the id does not match the content (edited after saving?)"


SAVED_PLAN_FILE: VersionedFile[SavedPlan] = VersionedFile(
    SavedPlan,
    what="saved plan",
    version=1,
    error=SavedPlanError,
    max_bytes=MAX_PLAN_BYTES,
    filename=plan_filename,
    pattern="plan-*.json",
    check=_id_matches,
    prepare=lambda p: p.model_copy(update={"id": p.content_id()}),
    kind="saved-plan",
)


def _margins(checks: dict[str, float | None], thresholds: dict[str, float]) -> dict[str, float | None]:
    return {
        k: (v / thresholds[k] if v is not None and thresholds.get(k) else None) for k, v in checks.items()
    }


def _llm_rows(plan: LlmPlan, sc: Scenario) -> list[PlanRow]:
    thresholds = {s.label(): s.threshold_ms for s in sc.slo}
    rows = [
        PlanRow(
            option=o.label,
            source=o.source,
            device=o.device,
            replica=o.replica,
            replicas=o.replicas_deployed,
            devices=o.devices_deployed,
            meets_slo=o.meets_slo,
            monthly_usd=o.monthly_cost_usd,
            usd_per_1m_tokens=o.usd_per_1m_output_tokens_all_in,
            usd_per_1k_requests=_per_1k(o.monthly_cost_usd, o.goodput_rps),
            tokens_per_joule=o.output_tokens_per_joule,
            slo_margin=_margins(o.slo, thresholds),
            best=o.label == plan.best,
        )
        for o in plan.options
    ]
    rows += [
        PlanRow(
            option=f"{b.tool} benchmark curve {b.benchmark_id.removeprefix('sha256:')[:12]}",
            source="benchmark",
            device=b.hardware,
            replica=b.replica,
            replicas=b.replicas,
            devices=b.devices,
            meets_slo=b.meets_slo,
            monthly_usd=b.monthly_cost_usd,
            usd_per_1m_tokens=b.usd_per_1m_output_tokens_all_in,
            usd_per_1k_requests=_per_1k(b.monthly_cost_usd, b.offered_rps),
            tokens_per_joule=None,
            slo_margin=_margins(b.slo, thresholds),
            best=plan.best == f"benchmark:{b.benchmark_id}",
        )
        for b in plan.from_benchmarks
    ]
    return rows


def _per_1k(monthly: float | None, rps: float | None) -> float | None:
    if monthly is None or not rps:
        return None
    return monthly / (rps * 730.0 * 3600.0) * 1000.0


def _batch_rows(plan: Plan) -> list[PlanRow]:
    return [
        PlanRow(
            option=o.label,
            source=o.source,
            device=o.device,
            replica="1 device",
            replicas=o.replicas_deployed,
            devices=o.replicas_deployed,
            meets_slo=o.meets_slo,
            monthly_usd=o.monthly_cost_usd,
            usd_per_1m_tokens=o.cost_per_1m_tokens_usd,
            usd_per_1k_requests=o.cost_per_1k_requests_usd,
            tokens_per_joule=o.units_per_joule if o.unit == "tokens" else None,
            slo_margin={
                c["slo"]: (c["observed_ms"] / c["threshold_ms"] if c.get("observed_ms") is not None else None)
                for c in o.slo
            },
            best=o.rank == 1,
        )
        for o in plan.options
    ]


def saved_plan(
    name: str, sc: Scenario, plan: Plan | LlmPlan, question: dict[str, Any], saved_at: Any
) -> SavedPlan:
    """A plan and its question as a saved-plan record (not yet written)."""
    llm = isinstance(plan, LlmPlan)
    return SavedPlan(
        name=name,
        saved_at=saved_at,
        scenario=sc,
        plan_kind="llm" if llm else "batch",
        pricing=str(plan.pricing),
        question=question,
        answer=plan.answer,
        rows=_llm_rows(plan, sc) if isinstance(plan, LlmPlan) else _batch_rows(plan),
        plan=plan.model_dump(mode="json"),
    )


def question_record(req: SizingRequest) -> dict[str, Any]:
    """The request as a plain record (the scenario is stored beside it in full): evidence and knobs."""
    skip = {"scenario", "benchmarks", "redundancy"}
    rec: dict[str, Any] = {
        f.name: (list(v) if isinstance(v, tuple) else v)
        for f in fields(req)
        if f.name not in skip and (v := getattr(req, f.name)) not in (None, (), False)
    }
    rec["redundancy"] = req.redundancy.label()
    if req.benchmarks:
        rec["benchmarks"] = [b.id for b in req.benchmarks]
    return rec


def save_plan(p: SavedPlan, folder: str | Path) -> Path:
    """Write atomically into folder (the id set from the content), read back by the same reader first."""
    return SAVED_PLAN_FILE.save(p, folder)


def load_plan(path: str | Path) -> SavedPlan:
    """Read and check a saved plan (bounded JSON; its id must match its content)."""
    return SAVED_PLAN_FILE.read(path)


def scan_plans(folder: str | Path) -> tuple[list[tuple[Path, SavedPlan]], list[tuple[Path, str]]]:
    """The saved plans in folder (newest first) and the files that failed to load, with why."""
    found, broken = SAVED_PLAN_FILE.scan(folder)
    return sorted(found, key=lambda x: x[1].saved_at, reverse=True), broken


class ComparedPlan(ResultModel):
    """One plan's answer in the comparison: its best option(s) and totals over the years asked."""

    name: str
    plan_id: str
    scenario: str
    pricing: str
    answer: str
    row: PlanRow | None  # the cheapest best option (None: the plan met no SLO)
    totals_usd: dict[int, float | None]  # years -> monthly x 12 x years
    worst_margin: float | None  # the SLO closest to (or furthest beyond) its threshold


class Comparison(ResultModel):
    """Plans side by side, and whether they answer the same question."""

    plans: list[ComparedPlan]
    same_question: bool
    notes: list[str]


def compare_plans(plans: list[SavedPlan], years: tuple[int, ...] = (1, 3)) -> Comparison:
    """Each plan's answer in shared figures, and what differs between their questions."""
    if len(plans) < 2:
        raise SavedPlanError("give at least two saved plans to compare")
    if any(not 1 <= y <= 30 for y in years):
        raise SavedPlanError("years must be in 1..30")
    out = []
    for p in plans:
        best = sorted(p.best_rows(), key=lambda r: (r.monthly_usd is None, r.monthly_usd or 0.0))
        row = best[0] if best else None
        monthly = row.monthly_usd if row else None
        margins = [m for m in (row.slo_margin.values() if row else []) if m is not None]
        out.append(
            ComparedPlan(
                name=p.name,
                plan_id=p.id,
                scenario=p.scenario.name,
                pricing=p.pricing,
                answer=p.answer,
                row=row,
                totals_usd={y: (monthly * 12 * y if monthly is not None else None) for y in years},
                worst_margin=max(margins) if margins else None,
            )
        )
    notes: list[str] = []
    scenarios = {json.dumps(p.scenario.model_dump(mode="json"), sort_keys=True) for p in plans}
    same = len(scenarios) == 1
    if not same:
        notes.append(
            "the plans answer different questions (their scenarios differ: "
            + ", ".join(dict.fromkeys(p.scenario.name for p in plans))
            + "): compare their costs knowing the traffic or SLOs are not the same"
        )
    if any(r.row is not None and r.row.source == "assumed" for r in out):
        notes.append("ASSUMED rows are rooflines or what-if profiles, not measurements")
    if len({p.plan_kind for p in plans}) > 1:
        notes.append("batch and generative plans side by side: their $/1M tokens count different tokens")
    notes.append("totals: $ a month x 12 x years at the plan's prices; no discounting, no price changes")
    return Comparison(plans=out, same_question=same, notes=notes)
