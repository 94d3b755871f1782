"""App responsiveness on the shipped data: first page render and a slider change on cached inputs.

Two measurements, each the median of `--repeats`:
- cold first page: a fresh server started as `make run` does (serve.py), a fresh chromium tab, until the first plotly chart
  of the Runs page has drawn (what a newcomer waits for), via playwright and Debian's chromium;
- script time (AppTest, no browser): the Runs page cold, then the SLO explorer's threshold slider moved on
  cached inputs (the plan and ladders are computed once beforehand and not counted);
- sizing steady-api in the app (AppTest: the Fleet sizing page, model cnn, the default grid, cold cache, the
  planner's worker pool started as a fresh server would) against `fleetwise size` for the same question in a
  fresh process (issue 14: the app within 2x of the CLI, and under 5 s).

    python benchmarks/app_speed.py [--repeats 3] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import CHROMIUM, FLAGS, served

ROOT = Path(__file__).resolve().parents[1]


def browser_first_page() -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    with served() as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        t0 = time.perf_counter()
        page.goto(url)
        page.get_by_text("Measured runs").first.wait_for(timeout=60_000)
        page.locator("[data-testid=stDataFrame], [data-testid=stTable]").first.wait_for(timeout=60_000)
        content = time.perf_counter() - t0
        page.locator(".stPlotlyChart .main-svg").first.wait_for(timeout=60_000)
        took = content, time.perf_counter() - t0
        browser.close()
    return took


def script_times() -> tuple[float, float]:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("steady-api")
    at.button[0].click().run()  # the default grid: computed once, not timed
    at.switch_page("pages/slo_explorer.py").run()
    slider = at.slider(key="slo_ms")
    t0 = time.perf_counter()
    slider.set_value((slider.min + slider.max) / 2).run()
    moved = time.perf_counter() - t0
    assert not at.exception, at.exception
    return first, moved


def app_sizing(scenario: str, model: str) -> tuple[float, list[str], list[str]]:
    """Seconds from pressing "Size the fleet" to the answer, and the runs and profiles the page sized."""
    st.cache_resource.clear()  # every repeat sizes from scratch (the result store lives in a resource)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value(scenario)
    at.selectbox(key="sz_model").set_value(model).run()
    t0 = time.perf_counter()
    at.button[0].click().run()
    took = time.perf_counter() - t0
    assert not at.exception, at.exception
    params = at.session_state["plan_params"]
    return took, params["runs"], params["profiles"]


def cli_sizing(scenario: str, runs: list[str], profiles: list[str]) -> float:
    cmd = [
        sys.executable,
        "-m",
        "fleetwise_cli.main",
        "size",
        "--scenario",
        f"scenarios/{scenario}.yaml",
        "--json",
    ]
    for r in runs:
        cmd += ["--runs", r]
    for p in profiles:
        cmd += ["--profiles", p]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    app_s, cli_s = [], []
    for _ in range(args.repeats):
        took, runs, profiles = app_sizing("steady-api", "cnn")
        app_s.append(took)
        cli_s.append(cli_sizing("steady-api", runs, profiles))
    a, c = statistics.median(app_s), statistics.median(cli_s)
    print(
        f"sizing steady-api for cnn ({len(runs)} runs, {len(profiles)} profiles): app median {a:.1f} s "
        f"({', '.join(f'{x:.1f}' for x in app_s)}), CLI (fresh process) median {c:.1f} s "
        f"({', '.join(f'{x:.1f}' for x in cli_s)}); app/CLI {a / c:.2f}; targets: app < 5 s, app/CLI < 2"
    )
    if args.no_browser:
        return
    cold = [browser_first_page() for _ in range(args.repeats)]
    print(
        f"browser, cold server, Runs page title and table shown: median {statistics.median(c[0] for c in cold):.2f} s; "
        f"first chart drawn: median {statistics.median(c[1] for c in cold):.2f} s "
        f"({', '.join(f'{c[1]:.2f}' for c in cold)}); target < 3 s"
    )
    scripts = [script_times() for _ in range(args.repeats)]
    print(f"script, Runs page cold: median {statistics.median(r[0] for r in scripts):.2f} s")
    print(
        f"script, SLO threshold slider on cached inputs: median {statistics.median(r[1] for r in scripts):.3f} s "
        f"({', '.join(f'{r[1]:.3f}' for r in scripts)}); target < 1 s"
    )


if __name__ == "__main__":
    main()
