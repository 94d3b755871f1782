"""How much a running app logs: `make run`'s server (serve.py, file watcher off) driven through every page by
chromium for `--minutes`, then its log counted and shown.

Target (issue 14): under 100 lines for a 10-minute session. Each round visits Runs, Scenario, Fleet sizing
(one shipped scenario per round, the default grid), the SLO explorer, Compare runs and the Report; rounds
are bounded in number and time.

    python benchmarks/server_log.py [--minutes 10] [--max-rounds 40]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import CHROMIUM, FLAGS, served

SCENARIOS = ["steady-api", "bursty-api", "nightly-batch", "launch-day-spike", "diurnal-chat"]


def idle(page: object) -> None:
    """Wait until the app's script run has finished (Streamlit shows its status widget while running)."""
    page.wait_for_timeout(1500)  # type: ignore[attr-defined]
    page.locator("[data-testid=stStatusWidget]").wait_for(state="hidden", timeout=600_000)  # type: ignore[attr-defined]


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--max-rounds", type=int, default=40)
    args = ap.parse_args()
    rounds = 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log, served(log) as url, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(180_000)
            page.goto(url)
            nav = page.locator("[data-testid=stSidebarNav]")
            while time.monotonic() - t0 < args.minutes * 60 and rounds < args.max_rounds:
                nav.get_by_role("link", name="Runs", exact=True).click()
                page.locator(".stPlotlyChart .main-svg").first.wait_for()
                nav.get_by_text("Scenario").click()
                page.get_by_text("Valid scenario").first.wait_for()
                nav.get_by_text("Fleet sizing").click()
                page.get_by_role("combobox", name="Scenario").click()
                page.get_by_role("option", name=SCENARIOS[rounds % len(SCENARIOS)], exact=True).click()
                page.wait_for_timeout(1000)
                page.get_by_role("button", name="Size the fleet").click()
                idle(page)  # the last answer stays on screen while the new one is computed
                nav.get_by_text("SLO explorer").click()
                idle(page)
                page.get_by_text("Latency-cost frontier").first.wait_for()
                nav.get_by_text("Compare runs").click()
                page.get_by_text("Comparability").first.wait_for()
                nav.get_by_text("Report").click()
                page.get_by_text("Fleet sizing report").first.wait_for()
                rounds += 1
            browser.close()
        lines = log_path.read_text(errors="replace").splitlines()
    took = (time.monotonic() - t0) / 60
    print(f"{rounds} rounds of every page (sizing each time) in {took:.1f} min: {len(lines)} log lines")
    for line in lines[:20]:
        print(f"  | {line}")
    print("target: under 100 lines for a 10-minute session")


if __name__ == "__main__":
    main()
