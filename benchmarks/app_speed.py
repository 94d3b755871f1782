"""App responsiveness on the shipped data: first page render and a slider change on cached inputs.

Two measurements, each the median of `--repeats`:
- cold first page: a fresh server started as `make run` does (serve.py), a fresh chromium tab, until the first plotly chart
  of the Runs page has drawn (what a newcomer waits for), via playwright and Debian's chromium;
- script time (AppTest, no browser): the Runs page cold, then the SLO explorer's threshold slider moved on
  cached inputs (the plan and ladders are computed once beforehand and not counted).

    python benchmarks/app_speed.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def browser_first_page() -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable,
        str(ROOT / "serve.py"),  # what `make run` starts
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
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
    finally:
        proc.terminate()
        proc.wait(timeout=20)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    cold = [browser_first_page() for _ in range(args.repeats)]
    print(
        f"browser, cold server, Runs page title and table shown: median {statistics.median(c[0] for c in cold):.2f} s; "
        f"first chart drawn: median {statistics.median(c[1] for c in cold):.2f} s "
        f"({', '.join(f'{c[1]:.2f}' for c in cold)}); target < 3 s"
    )
    runs = [script_times() for _ in range(args.repeats)]
    print(f"script, Runs page cold: median {statistics.median(r[0] for r in runs):.2f} s")
    print(
        f"script, SLO threshold slider on cached inputs: median {statistics.median(r[1] for r in runs):.3f} s "
        f"({', '.join(f'{r[1]:.3f}' for r in runs)}); target < 1 s"
    )


if __name__ == "__main__":
    main()
