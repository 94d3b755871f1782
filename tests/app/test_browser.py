"""The app in a real browser (Debian's chromium via playwright): every page, an upload, charts drawn, a
model-first sizing with a machine the price book does not know, and the SLO explorer at the scenario's SLO.

Screenshots go to tests/artifacts/ (git-ignored). Skipped where chromium or playwright is missing; .ci/run
installs both, so CI always runs it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from benchmarks.served import CHROMIUM, FLAGS, patience, served  # shared with the benchmarks
from measure.run import save_run
from tests.conftest import REPO, make_run, shipped_files

ARTIFACTS = REPO / "tests" / "artifacts"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.timeout(1800),  # the page waits below are load-aware (up to 4 x 120 s each)
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    runs = tmp_path / "runs"
    runs.mkdir()
    for f in shipped_files():
        shutil.copy(f, runs)
    env = {**os.environ, "FLEETWISE_RUNS_DIR": str(runs), "FLEETWISE_SCENARIOS_DIR": str(tmp_path / "sc")}
    env["FLEETWISE_PLANS_DIR"] = str(tmp_path / "plans")
    shutil.copytree(REPO / "scenarios", tmp_path / "sc")
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        try:
            with served(log, env) as url:  # as `make run` starts it: serve.py, file watcher off
                yield url, runs, tmp_path
        except RuntimeError as exc:
            pytest.fail(f"the app server did not start ({exc}): " + log_path.read_text(errors="replace"))


def test_every_page_renders_in_chromium_and_an_upload_lands(server) -> None:  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api")
    url, runs, tmp = server
    ARTIFACTS.mkdir(exist_ok=True)
    # a run of the development VM's kind, so the price book prices it when the sizing page uses it
    upload = save_run(make_run(device_name="Intel(R) Xeon(R) Processor"), tmp / "upload")
    # a run from a machine the price book does not know: sized, shown "not priced", then priced by hand
    save_run(make_run(device_name="Ampere Altra Q80-30"), runs)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(patience(120.0) * 1000)
        page.goto(url)
        page.get_by_text("Measured runs").first.wait_for()
        page.locator(".stPlotlyChart .main-svg").first.wait_for()  # plotly drew a chart
        page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)

        page.get_by_text("Upload a run file").first.click()
        page.locator("input[type=file]").set_input_files(str(upload))
        try:
            page.get_by_text("Saved run").first.wait_for()
        finally:
            page.screenshot(path=str(ARTIFACTS / "upload.png"), full_page=True)
        assert len(list(runs.glob("*.json"))) == len(shipped_files()) + 2
        page.screenshot(path=str(ARTIFACTS / "upload.png"), full_page=True)

        nav = page.locator("[data-testid=stSidebarNav]")
        nav.get_by_text("Scenario").click()
        page.get_by_text("Valid scenario").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "scenario.png"), full_page=True)

        nav.get_by_text("Fleet sizing").click()
        model = page.get_by_role("combobox", name="Model to plan for")
        model.click()
        page.get_by_role("option", name="mlp", exact=True).click()  # model first: only mlp runs follow
        page.wait_for_timeout(2000)  # the rerun after the model choice fills the runs list
        page.get_by_role("button", name="Size the fleet").click()
        try:
            page.get_by_text("Answer", exact=True).wait_for()
        finally:
            page.screenshot(path=str(ARTIFACTS / "sizing.png"), full_page=True)
        page.locator(".stPlotlyChart .main-svg").first.wait_for()
        page.get_by_text("not priced").first.wait_for()  # the unknown machine: sized, listed, not costed
        page.screenshot(path=str(ARTIFACTS / "sizing.png"), full_page=True)
        page.get_by_text("Price these devices for this session").click()
        page.get_by_role("button", name="Price them and re-plan").click()
        # re-planned with the session price: no device is left "not priced"
        sync_api.expect(page.get_by_text("not priced")).to_have_count(0, timeout=patience(180.0) * 1000)
        page.get_by_text("Answer", exact=True).wait_for()
        page.screenshot(path=str(ARTIFACTS / "sizing-priced.png"), full_page=True)

        nav.get_by_text("SLO explorer").click()
        page.get_by_text("Latency-cost frontier").first.wait_for()
        # the slider starts at the scenario's own SLO (bursty-api: p99 <= 150 ms), even beyond the ladders
        assert page.get_by_test_id("stSliderThumbValue").last.inner_text().startswith("150")
        page.screenshot(path=str(ARTIFACTS / "slo_explorer.png"), full_page=True)

        nav.get_by_text("Compare runs").click()
        page.get_by_text("Comparability").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)

        nav.get_by_text("Report").click()
        page.get_by_text("Fleet sizing report").first.wait_for()
        page.get_by_text("user-supplied in the app session").first.wait_for()  # the session price, labelled
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        errors = page.locator("[data-testid=stException]").count()
        browser.close()
    assert errors == 0
    # a quiet server: sizing workers do not re-run the page (each one used to log "missing ScriptRunContext")
    logged = (tmp / "server.log").read_text(errors="replace").splitlines()
    assert not [x for x in logged if "ScriptRunContext" in x or "Traceback" in x], logged[:20]
    assert len(logged) < 30, logged[:40]


def test_an_llm_run_is_viewed_sized_explored_and_reported_in_chromium(server) -> None:  # type: ignore[no-untyped-def]
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _runs, tmp = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(patience(120.0) * 1000)
        page.goto(url)
        page.get_by_text("Measured runs").first.wait_for()
        run = page.get_by_role("combobox", name="Run")
        run.click()
        page.keyboard.type("llm-engine")  # the list filters as one types: any engine run will do
        page.keyboard.press("Enter")
        page.get_by_text("a closed-loop sweep against a serving engine").first.wait_for()  # the LLM view
        page.locator(".stPlotlyChart .main-svg").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "llm-run.png"), full_page=True)

        nav = page.locator("[data-testid=stSidebarNav]")
        nav.get_by_text("Fleet sizing").click()
        scenario = page.get_by_role("combobox", name="Scenario")
        scenario.click()
        page.get_by_role("option", name="tiny-chat", exact=True).click()
        page.get_by_text(
            "max_num_batched_tokens"
        ).first.wait_for()  # the rerun drew the LLM form: Size is its own
        page.get_by_role("button", name="Size", exact=True).click()
        try:
            page.get_by_text("Answer", exact=True).wait_for()
        finally:
            page.screenshot(path=str(ARTIFACTS / "llm-sizing.png"), full_page=True)
        # the shipped price book knows the machine the shipped runs were measured on: the answer is money
        page.get_by_text(re.compile(r"\$[0-9][0-9,]* a month")).first.wait_for()

        nav.get_by_text("SLO explorer").click()
        page.get_by_text("p99 TTFT threshold (ms)").first.wait_for()
        page.get_by_text("p99 TPOT threshold (ms)").first.wait_for()
        thumbs = page.get_by_test_id("stSliderThumbValue")
        assert thumbs.nth(1).inner_text().startswith("100") and thumbs.nth(2).inner_text().startswith("15")
        page.locator(".stPlotlyChart .main-svg").nth(2).wait_for()
        page.screenshot(path=str(ARTIFACTS / "llm-slo-explorer.png"), full_page=True)

        nav.get_by_text("Report").click()
        page.get_by_text("LLM fleet sizing report").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "llm-report.png"), full_page=True)
        errors = page.locator("[data-testid=stException]").count()
        browser.close()
    assert errors == 0
    logged = (tmp / "server.log").read_text(errors="replace").splitlines()
    assert not [x for x in logged if "ScriptRunContext" in x or "Traceback" in x], logged[:20]


def test_an_assumed_h200_plan_for_llama_70b_is_labelled_assumed_in_chromium(server) -> None:  # type: ignore[no-untyped-def]
    """Planning hardware nobody here owns: the H200 roofline profile picked on the LLM form; the answer, the
    table and the report say ASSUMED."""
    sync_api = pytest.importorskip("playwright.sync_api")
    url, _runs, tmp = server
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(patience(120.0) * 1000)
        page.goto(url)
        page.get_by_text("Measured runs").first.wait_for()
        nav = page.locator("[data-testid=stSidebarNav]")
        nav.get_by_text("Fleet sizing").click()
        scenario = page.get_by_role("combobox", name="Scenario")
        scenario.click()
        page.get_by_role("option", name="llama-70b-chat", exact=True).click()
        page.get_by_text("max_num_batched_tokens").first.wait_for()
        page.get_by_role("combobox", name=re.compile("Assumed LLM profiles")).click()
        page.get_by_role("option", name="h200-llama-3.1-70b-tp8", exact=True).click()
        page.keyboard.press("Escape")
        page.get_by_role("button", name="Size", exact=True).click()
        try:
            page.get_by_text("Answer", exact=True).wait_for()
            page.get_by_text("ASSUMED, not measured").first.wait_for()
            page.get_by_text(
                re.compile(r"ASSUMED \(roofline, not measured\): \d+ x NVIDIA H200")
            ).first.wait_for()
        finally:
            page.screenshot(path=str(ARTIFACTS / "llm-assumed-sizing.png"), full_page=True)
        nav.get_by_text("Report").click()
        page.get_by_text("h200-llama-3.1-70b-tp8").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "llm-assumed-report.png"), full_page=True)

        # rented and owned, saved, then side by side
        nav.get_by_text("Fleet sizing").click()
        page.get_by_text("Answer", exact=True).wait_for()  # the form and its answer came back with the page
        for pricing in ("on_demand", "owned"):
            if pricing != "on_demand":
                page.get_by_role("combobox", name="Pricing", exact=True).click()
                page.keyboard.type(pricing)  # the list filters as one types
                page.keyboard.press("Enter")
                page.get_by_role("button", name="Size", exact=True).click()
                page.get_by_text(
                    re.compile(r"ASSUMED \(roofline, not measured\): \d+ x NVIDIA H200")
                ).first.wait_for()
            name = page.get_by_label("Save this plan as")
            name.fill(f"h200-{pricing}")
            name.press("Enter")  # Enter in a form's text box submits the form: saved
            try:
                page.get_by_text(f"Saved plan-h200-{pricing}").first.wait_for()
            finally:
                page.screenshot(path=str(ARTIFACTS / f"save-plan-{pricing}.png"), full_page=True)
        assert len(list((tmp / "plans").glob("plan-*.json"))) == 2
        nav.get_by_text("Compare plans").click()
        page.get_by_text("Total cost over the years").first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "compare-plans.png"), full_page=True)
        errors = page.locator("[data-testid=stException]").count()
        browser.close()
    assert errors == 0
    logged = (tmp / "server.log").read_text(errors="replace").splitlines()
    assert not [x for x in logged if "ScriptRunContext" in x or "Traceback" in x], logged[:20]
