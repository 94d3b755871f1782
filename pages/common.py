"""Shared UI plumbing for the pages: where data lives, cached loaders keyed on content, labels.

Caches are keyed on real inputs only: file fingerprints and content ids for runs, the scenario's JSON, the
price book's digest and every sizing parameter. Runs are kept with st.cache_resource (no pickling); plans,
ladders and sensitivity tables in a ResultCache keyed the same way.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from planner.evidence.bench_import import scan_benchmarks
from planner.evidence.catalog import Catalog, scan_runs
from planner.evidence.engine_benchmark import EngineBenchmark
from planner.fleet.escape import md_escape
from planner.fleet.plan import Plan, Question, SensitivityRow, options_for, sensitivity
from planner.fleet.prices import PriceBook, load_prices, price_entry_yaml, with_session_prices
from planner.fleet.ranking import PlannedOption
from planner.fleet.redundancy import Redundancy
from planner.fleet.sizing import Task
from planner.fleet.tradeoff import Ladder, ladder
from planner.llm.sizing import LlmPlan
from planner.question.request import SizingRequest, answer
from planner.question.saved import save_plan, saved_plan
from planner.traffic.scenario import Scenario, load_scenario, parse_scenario
from planner.workers import TaskProgress, executor_from_env, in_workers, start_workers

ROOT = Path(__file__).resolve().parents[1]
JOBS = max(1, min(os.cpu_count() or 1, 4))
# where the app's sizings run: chosen once, by the environment the app server was started in (docs/cluster.md)
EXECUTOR = executor_from_env()


def runs_dir() -> Path:
    """Where runs are read and uploads saved (FLEETWISE_RUNS_DIR overrides data/runs)."""
    return Path(os.environ.get("FLEETWISE_RUNS_DIR", ROOT / "data" / "runs"))


def scenarios_dir() -> Path:
    """Where shipped scenarios are read and edited ones saved (FLEETWISE_SCENARIOS_DIR overrides)."""
    return Path(os.environ.get("FLEETWISE_SCENARIOS_DIR", ROOT / "scenarios"))


def benchmarks_dir() -> Path:
    """Where imported engine benchmarks are read and saved (FLEETWISE_BENCHMARKS_DIR overrides data/benchmarks)."""
    return Path(os.environ.get("FLEETWISE_BENCHMARKS_DIR", ROOT / "data" / "benchmarks"))


def plans_dir() -> Path:
    """Where saved plans are written and compared (FLEETWISE_PLANS_DIR overrides data/plans)."""
    return Path(os.environ.get("FLEETWISE_PLANS_DIR", ROOT / "data" / "plans"))


def save_plan_form(sc: Scenario, plan: Plan | LlmPlan, question: dict[str, Any], key: str) -> None:
    """A name and a button that save the plan on screen (with its question) for the Compare plans page."""
    with st.form(f"save_{key}"):
        name = st.text_input(
            "Save this plan as", f"{plan.scenario}-{plan.pricing}", max_chars=200, key=f"save_name_{key}"
        )
        if st.form_submit_button("Save plan"):
            if not name.strip():
                st.error("Give the plan a name.")
                return
            try:
                path = save_plan(saved_plan(name.strip(), sc, plan, question, datetime.now(UTC)), plans_dir())
            except (ValueError, OSError) as exc:
                st.error(md_escape(f"Not saved: {exc}", 1000))
                return
            st.success(md_escape(f"Saved {path.name}: compare it on the Compare plans page.", 1000))


def validations_dir() -> Path:
    """Where live validation files are read (FLEETWISE_VALIDATIONS_DIR overrides data/validations)."""
    return Path(os.environ.get("FLEETWISE_VALIDATIONS_DIR", ROOT / "data" / "validations"))


def profile_paths() -> list[str]:
    """The shipped assumed profiles."""
    return [str(p) for p in sorted((ROOT / "profiles").glob("*.yaml"))]


def llm_profile_paths() -> list[str]:
    """The shipped assumed LLM profiles (rooflines for hardware you do not own)."""
    return [str(p) for p in sorted((ROOT / "profiles" / "llm").glob("*.yaml"))]


def text_table(df: pd.DataFrame) -> None:
    """st.table renders markdown in its cells (links, images fetched by the viewer's browser, LaTeX): every
    text cell and index label is escaped first, so a name from a file shows as the characters it is."""

    def cell(v: object) -> object:
        return md_escape(v, 500) if isinstance(v, str) else v

    safe = df.map(cell)
    safe.index = safe.index.map(cell)
    st.table(safe)


def prices_path() -> Path:
    """The price book in use (FLEETWISE_PRICES overrides data/prices.yaml)."""
    return Path(os.environ.get("FLEETWISE_PRICES", ROOT / "data" / "prices.yaml"))


def _fingerprint(folder: Path, pattern: str = "*.json") -> tuple[tuple[str, int, int], ...]:
    if not folder.is_dir():
        return ()
    out = []
    for p in folder.glob(pattern):
        try:
            st_ = p.stat()
        except OSError:  # a dangling link: listed as broken by the catalogue, never a crash here
            out.append((p.name, -1, -1))
            continue
        out.append((p.name, st_.st_size, st_.st_mtime_ns))
    return tuple(sorted(out))


@st.cache_resource(show_spinner=False, max_entries=8)
def _catalog(folder: str, fingerprint: tuple[tuple[str, int, int], ...]) -> Catalog:
    return scan_runs(folder)


@st.cache_resource(show_spinner=False, max_entries=4)
def _benchmarks(
    folder: str, fingerprint: tuple[tuple[str, int, int], ...]
) -> tuple[list[tuple[Path, EngineBenchmark]], list[tuple[Path, str]]]:
    return scan_benchmarks(folder)


def benchmarks() -> tuple[list[tuple[Path, EngineBenchmark]], list[tuple[Path, str]]]:
    """The imported engine benchmarks and the files that failed to load, read once per change of the folder
    (a large file is parsed and checked once, not on every page view)."""
    folder = benchmarks_dir()
    return _benchmarks(str(folder), _fingerprint(folder, "bench-*.json"))


def catalog() -> Catalog:
    """Every run in the runs folder; a new or changed file changes the key, so it appears at once."""
    folder = runs_dir()
    return _catalog(str(folder), _fingerprint(folder))


@st.cache_resource(show_spinner=False, max_entries=4)
def _prices(path: str, digest: str) -> PriceBook:
    return load_prices(path)


def price_book(params: dict[str, Any] | None = None) -> PriceBook:
    """The price book, reloaded when its content changes, plus the prices the user entered for this session
    (params["session_prices"]), labelled user-supplied wherever they are shown."""
    p = prices_path()
    book = _prices(str(p), prices_digest())
    session = (params or {}).get("session_prices") or {}
    return with_session_prices(book, session, datetime.now(UTC).date()) if session else book


def session_price_form(unpriced: list[str], params_key: str) -> None:
    """Let the user price devices the book lacks for this session (labelled user-supplied wherever shown) and
    download a price-book entry to add; a price entered re-plans the parameters under `params_key`."""
    if not unpriced:
        return
    with st.expander("Price these devices for this session (labelled user-supplied in the plan and report)"):
        with st.form(f"session_prices_{params_key}"):
            entered = {
                dev: st.number_input(
                    f"$ per device-hour for {md_escape(dev)} (energy included)",
                    min_value=0.0001,
                    max_value=10_000.0,
                    value=1.0,
                    key=f"sp_{params_key}_{i}",
                )
                for i, dev in enumerate(unpriced)
            }
            if st.form_submit_button("Price them and re-plan"):
                st.session_state["session_prices"] = {**st.session_state.get("session_prices", {}), **entered}
                st.session_state[params_key] = {
                    **st.session_state[params_key],
                    "session_prices": st.session_state["session_prices"],
                }
                st.rerun()
        for i, dev in enumerate(unpriced):
            st.download_button(
                f"Price-book entry for {md_escape(dev)} (YAML, to fill in and add)",
                price_entry_yaml(
                    dev, float(st.session_state.get(f"sp_{params_key}_{i}", 1.0)), datetime.now(UTC).date()
                ),
                file_name="price-entry.yaml",
                key=f"sp_dl_{params_key}_{i}",
            )


def shipped_scenarios() -> dict[str, Scenario]:
    """Scenario name -> scenario, for every YAML in the scenarios folder that validates."""
    out: dict[str, Scenario] = {}
    # generative (LLM) scenarios sit in llm/: the batch tests and examples read the folder's top level only
    for p in [*sorted(scenarios_dir().glob("*.yaml")), *sorted(scenarios_dir().glob("llm/*.yaml"))]:
        try:
            sc = load_scenario(p)
        except ValueError:
            continue
        out[sc.name] = sc
    return out


def current_scenario() -> Scenario | None:
    """The scenario edited on the Scenario page in this session, if any."""
    data = st.session_state.get("scenario_json")
    return parse_scenario(data, "edited scenario") if data else None


def short_label(o: PlannedOption) -> str:
    """A compact option name: evidence, precision, batching (ASSUMED first for profiles)."""
    if o.source == "assumed":
        what = "ASSUMED " + o.evidence_ids[0].removeprefix("assumed-profile:")
    else:
        what = f"{o.group.split(' (')[0]} {o.precision} run {o.representative.removeprefix('sha256:')[:8]}"
    return f"{what} · batch {o.max_batch} · delay {o.max_delay_ms:g} ms"


def log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks at 1, 2 and 5 per decade (1 only beyond four decades) spanning lo..hi, padded a little.

    Plotly's own log ticks label the values between powers of ten with their first digit only ("5 6 7 8 9
    1 2" under a millisecond), which nobody can read off a chart.
    """
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        return []
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    steps = (1, 2, 5) if k1 - k0 <= 4 else (1,)
    return [m * 10.0**k for k in range(k0, k1 + 1) for m in steps if lo / 3 <= m * 10.0**k <= hi * 3]


def readable(fig: go.Figure) -> go.Figure:
    """The figure with every log axis ticked at 1-2-5 values labelled in full (0.2, 0.5, 1, 2 ...)."""
    for name in ("x", "y"):
        axis = fig.layout.xaxis if name == "x" else fig.layout.yaxis
        if axis.type != "log":
            continue
        vals: list[float] = []
        for trace in fig.data:
            data = getattr(trace, name, None)
            if data is None:
                continue
            try:
                arr = np.asarray(data, dtype=float)
            except (TypeError, ValueError):
                continue
            vals.extend(arr[np.isfinite(arr) & (arr > 0)].tolist())
        if vals:
            ticks = log_ticks(min(vals), max(vals))
            axis.update(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks])
    return fig


def line(*args: Any, **kw: Any) -> go.Figure:
    """px.line with readable log axes."""
    return readable(px.line(*args, **kw))


def scatter(*args: Any, **kw: Any) -> go.Figure:
    """px.scatter with readable log axes."""
    return readable(px.scatter(*args, **kw))


def plot_label(o: PlannedOption) -> str:
    """short_label for chart legends and hover text, where plotly reads a subset of HTML (links included)."""
    return html.escape(short_label(o))


def source_badge(source: str) -> str:
    """Markdown badge saying where a figure comes from."""
    return ":orange[**ASSUMED, not measured**]" if source == "assumed" else ":green[**measured**]"


# ------------------------------------------------------------------------------------------------ compute


class ResultCache:
    """Results keyed on their full inputs (parameters JSON, run content ids, price-book digest), LRU-bounded.

    Not st.cache_data: a cached function's Streamlit calls are recorded and replayed, and these computations
    report progress to a bar on the page, which must not be replayed.
    """

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Any:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key: tuple[str, ...], value: Any) -> None:
        with self.lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)


@st.cache_resource(show_spinner=False)
def workers_started() -> bool:
    """Start the sizing workers' fork server once per app server, while the user is still choosing."""
    start_workers()
    return True


@st.cache_resource(show_spinner=False)
def _results() -> ResultCache:
    return ResultCache()


def cached(key: tuple[str, ...], compute: Callable[[TaskProgress], Any], text: str) -> Any:
    """The stored result for key, or compute it with a progress bar (only a miss shows one) and store it."""
    store = _results()
    hit = store.get(key)
    if hit is not None:
        return hit
    bar = st.progress(0.0, text=text)

    def report(done: int, total: int, label: str) -> None:
        bar.progress(done / max(total, 1), text=f"{text}: {done}/{total} options ({label[:70]})")

    try:
        value = compute(report)
    finally:
        bar.empty()
    store.put(key, value)
    return value


def request_from(params: dict[str, Any]) -> SizingRequest:
    """The sizing request (the CLI's too) from the plain parameters the batch form's cache is keyed on."""
    return SizingRequest(
        scenario=parse_scenario(params["scenario"], "scenario"),
        runs=tuple(params["runs"]),
        profiles=tuple(params["profiles"]),
        precisions=tuple(params["precisions"]) or None,
        max_batches=tuple(params["max_batches"]) or None,
        max_delays_ms=tuple(params["max_delays_ms"]) or None,
        pricing=params["pricing"],
        rank_by=params["rank_by"],
        redundancy=Redundancy(params["spares"], params["headroom"]),
        requests=params["requests"],
        service_scale=params.get("service_scale"),
        full_length=not params.get("early_stop", True),
    )


def question_from(params: dict[str, Any]) -> Question:
    """The batch sizing Question of these parameters (ladders and sensitivity re-size its options)."""
    return request_from(params).batch_question()


def _key(kind: str, params: dict[str, Any], *extra: str) -> tuple[str, ...]:
    return (kind, json.dumps(params, sort_keys=True), *run_ids_for(params["runs"]), prices_digest(), *extra)


def plan_for(params: dict[str, Any]) -> Plan:
    """The sizing plan for these parameters (cached on them, the runs' content ids and the price book)."""
    req = request_from(params)
    book = price_book(params)
    return cast(Plan, cached(_key("plan", params), lambda p: answer(req, book, JOBS, p, EXECUTOR), "Sizing"))


def ladders_for(params: dict[str, Any], keys: tuple[str, ...]) -> list[Ladder]:
    """Latency by replica count for the chosen options (keys) of the parameters' grid."""
    q = question_from(params)

    def compute(progress: TaskProgress) -> list[Ladder]:
        specs, _ = options_for(q)
        tasks = [
            Task(s, q.scenario, q.sizing_requests, q.max_replicas, q.service_scale, q.early_stop)
            for s in specs
            if s.key in keys
        ]
        return in_workers(ladder, tasks, JOBS, progress, EXECUTOR)

    return cast(list[Ladder], cached(_key("ladders", params, *keys), compute, "Simulating"))


def sensitivity_for(params: dict[str, Any]) -> list[SensitivityRow]:
    """Sensitivity rows of the plan for these parameters (re-sizes the best option of each group)."""
    q, plan = question_from(params), plan_for(params)
    return cast(
        list[SensitivityRow],
        cached(
            _key("sensitivity", params),
            lambda p: sensitivity(q, price_book(params), plan, JOBS, p, EXECUTOR),
            "Sensitivity",
        ),
    )


def run_ids_for(paths: list[str]) -> tuple[str, ...]:
    """Content ids of the runs at these paths (the cache key for their evidence)."""
    by_path = {str(s.path): s.run.id for s in catalog().runs}
    return tuple(by_path.get(p, p) for p in paths)


def file_digests(paths: list[str]) -> tuple[str, ...]:
    """Digests of small files' bytes (assumed profiles): an edited file is a new cache key."""
    return tuple(hashlib.sha256(Path(p).read_bytes()).hexdigest() if Path(p).is_file() else p for p in paths)


def prices_digest() -> str:
    """Digest of the price book's bytes (part of every cost cache key)."""
    return hashlib.sha256(prices_path().read_bytes()).hexdigest()
