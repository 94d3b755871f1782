"""The option grid of a batch sizing: evidence (a device kind's runs, or an assumed profile) x precision x
batching config, each with a stable key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, get_args

from measure.run import Precision, Run
from planner.evidence.compare import comparability_key
from planner.serving.profiles import AssumedProfile, load_profile
from planner.serving.service import ServiceError
from planner.serving.service_from import from_profile, from_run, llm_not_served
from planner.serving.sim import Router
from planner.traffic.scenario import Scenario
from planner.workers import load_run_cached

DEFAULT_MAX_BATCHES = (1, 4, 16, 64)  # kept where measured; the largest ok batch is always added
DEFAULT_MAX_DELAYS_MS = (0.0, 5.0)
THROTTLE_FLAGS = frozenset({"power-capped", "thermal-slowdown", "hw-slowdown"})


class SizingError(ValueError):
    """Sizing input that cannot be used (no SLO, no option, bad grid); the message says which and why."""


# ------------------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class Evidence:
    """What an option's service times come from: runs of one device kind, or one assumed profile."""

    kind: Literal["run", "profile"]
    paths: tuple[str, ...]
    precision: str | None
    device: str  # device name (runs) or the profile's price-book key
    group: str  # comparability group label
    label: str
    # the parsed evidence itself: workers size from these and never read a file (a path can change under them)
    runs: tuple[Run, ...] = field(default=(), repr=False, compare=False)
    profile: AssumedProfile | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class OptionSpec:
    """One candidate configuration to size."""

    evidence: Evidence
    max_batch: int
    max_delay_ms: float
    router: Router
    exclude_throttled: bool = False

    @property
    def key(self) -> str:
        text = repr((self.evidence, self.max_batch, self.max_delay_ms, self.router, self.exclude_throttled))
        return hashlib.sha256(text.encode()).hexdigest()[:10]

    @property
    def label(self) -> str:
        return f"{self.evidence.label}, max_batch {self.max_batch}, max_delay {self.max_delay_ms:g} ms"


@lru_cache(maxsize=16)
def _load_profile(path: str) -> AssumedProfile:
    return load_profile(path)


def _group_label(run: Run) -> str:
    w, m = run.workload, run.methodology
    params = ", ".join(f"{k}={v}" for k, v in sorted(w.parameters.items()))
    return f"{w.name} ({params}; {w.unit}; methodology v{m.methodology_version}, {m.iteration_scope})"


def build_options(
    runs: list[str | Path],
    profiles: list[str | Path],
    precisions: list[str] | None,
    max_batches: list[int] | None,
    max_delays_ms: list[float] | None,
    router: Router,
    exclude_throttled: bool = False,
    scenario: Scenario | None = None,
) -> tuple[list[OptionSpec], list[str]]:
    """The option grid and the combinations left out, each with its reason.

    A scenario whose requests are token sequences (size.seq_len) is only sized against evidence that was
    measured (or assumed) per sequence length: serving it on a workload without one would ignore the tokens.
    """
    skipped: list[str] = []
    unknown = sorted(set(precisions or []) - set(get_args(Precision)))
    if unknown:
        raise SizingError(
            f"unknown precision {', '.join(map(repr, unknown))}: use {', '.join(get_args(Precision))}"
        )
    tokens = scenario is not None and scenario.size.seq_len is not None
    # one device kind = same device, same CPU count, same intra-op threads: a serving configuration
    groups: dict[tuple[str, str, int, int, str], list[tuple[str, Run]]] = {}
    for path in runs:
        run = load_run_cached(str(path))
        if run.is_llm:
            skipped.append(llm_not_served(run))
            continue
        if tokens and not run.workload.has_seq_len:
            skipped.append(
                f"run {run.short_id()} ({run.workload.name}): the scenario's requests are token sequences and "
                "this workload has no sequence length"
            )
            continue
        dev = (run.stack.device_name, run.stack.device_kind, run.stack.cpu_count_usable)
        key = (
            *dev[:2],
            dev[2] if dev[1] == "cpu" else 0,
            run.stack.torch_num_threads,
            comparability_key(run),
        )
        groups.setdefault(key, []).append((str(path), run))
    evidence: list[tuple[Evidence, int]] = []
    for (device, _, _, threads, _), members in groups.items():
        ok_precisions = sorted({p.precision for _, r in members for p in r.points if p.status == "ok"})
        wanted = precisions or ok_precisions
        for prec in wanted:
            have = [
                (p, r) for p, r in members if any(q.status == "ok" and q.precision == prec for q in r.points)
            ]
            ids = ", ".join(r.short_id() for _, r in members)
            if not have:
                skipped.append(f"runs {ids} ({members[0][1].workload.name}): no ok point at {prec}")
                continue
            flags = THROTTLE_FLAGS if exclude_throttled else frozenset()
            try:
                models = [from_run(r, prec, flags) for _, r in have]
            except ServiceError as exc:
                skipped.append(str(exc))
                continue
            if scenario is not None and not tokens and models[0].seq_lens:
                # never a silent default length: the per-token price would rest on a number nobody chose
                skipped.append(
                    f"runs {ids} at {prec}: a token workload (measured at sequence lengths "
                    f"{models[0].seq_lens}) and the scenario gives no sequence lengths (add size.seq_len)"
                )
                continue
            max_b = min(m.max_batch for m in models)
            run0 = have[0][1]
            n = f"{len(have)} runs, slowest used" if len(have) > 1 else f"run {run0.short_id()}"
            evidence.append(
                (
                    Evidence(
                        "run",
                        tuple(p for p, _ in have),
                        prec,
                        device,
                        _group_label(run0),
                        f"{run0.workload.name} {prec} on {device}, {threads} thread{'s' if threads != 1 else ''} ({n})",
                        runs=tuple(r for _, r in have),
                    ),
                    max_b,
                )
            )
    for path in profiles:
        prof = _load_profile(str(path))
        if precisions:
            skipped.append(
                f"profile {prof.name}: --precision does not apply to an assumed profile (used as is)"
            )
        model = from_profile(prof)
        if tokens and None in model.tables:
            skipped.append(
                f"profile {prof.name}: the scenario's requests are token sequences and the profile gives no seq_len"
            )
            continue
        if scenario is not None and not tokens and model.seq_lens:
            skipped.append(
                f"profile {prof.name}: assumed at sequence lengths {model.seq_lens} and the scenario gives no "
                "sequence lengths (add size.seq_len)"
            )
            continue
        evidence.append(
            (
                Evidence(
                    "profile",
                    (str(path),),
                    None,
                    prof.device,
                    f"profiles ({prof.unit})",
                    f"ASSUMED profile {prof.name} ({prof.device})",
                    profile=prof,
                ),
                model.max_batch,
            )
        )
    if runs and not any(ev.kind == "run" for ev, _ in evidence):
        raise SizingError("no run can be sized: " + "; ".join(skipped))
    options: list[OptionSpec] = []
    for ev, max_b in evidence:
        if max_batches:
            batches = sorted({b for b in max_batches if b <= max_b})
        else:
            batches = sorted({b for b in DEFAULT_MAX_BATCHES if b <= max_b} | {max_b})
        for b in sorted(set(max_batches or [])):
            if b > max_b:
                skipped.append(f"{ev.label}: max_batch {b} is above the largest ok batch {max_b}")
        delays = sorted(set(max_delays_ms if max_delays_ms is not None else DEFAULT_MAX_DELAYS_MS))
        for b in batches:
            # with max_batch 1 a batch never waits for company: every delay is the same option
            for d in delays if b > 1 else delays[:1]:
                options.append(OptionSpec(ev, b, d, router, exclude_throttled))
    if not options:
        raise SizingError("no option to size: " + ("; ".join(skipped) or "give --runs or --profiles"))
    return options, skipped


# ------------------------------------------------------------------------------------------------ levels
