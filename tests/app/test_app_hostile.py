"""Hostile uploads and edits in the app: data shows as text, one bad file never takes a page down, saves never
overwrite silently and never keep a path that cannot be replayed."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from measure.run import dump_run
from tests.app.test_app import app, data, shown  # noqa: F401  (data is a fixture)
from tests.conftest import REPO, make_run, shipped_files

EVIL = (
    "<script>alert(1)</script> ![x](http://attacker.invalid/p.png) [/bold] *b* <img src=x onerror=alert(1)>"
)


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="upload").upload(name, content, "application/json").run()
    assert not at.exception, at.exception
    return at


def evil_run() -> bytes:
    run = make_run(device_name=EVIL)
    run = run.model_copy(update={"workload": run.workload.model_copy(update={"name": "mlp", "unit": EVIL})})
    return dump_run(run).encode()


def markdown_bodies(at: AppTest) -> list[str]:
    return [
        e.value
        for kind in ("markdown", "caption", "error", "warning", "success", "info")
        for e in at.get(kind)
    ]


def test_run_text_is_shown_as_text_on_the_runs_and_compare_pages(data: Path) -> None:  # noqa: F811
    at = upload(app(), "evil.json", evil_run())
    assert any("Saved run" in s.value for s in at.success)
    at = app()  # a fresh session lists it like any other run
    pick = at.selectbox(key="run_pick")
    pick.set_value(next(o for o in pick.options if "<script>" in o)).run()
    assert not at.exception
    at.switch_page("pages/compare.py").run()
    cmp = at.multiselect(key="cmp_runs")
    cmp.set_value([next(o for o in cmp.options if "<script>" in o), cmp.options[0]]).run()
    assert not at.exception
    bodies = markdown_bodies(at)
    assert any("attacker.invalid" in b for b in bodies)  # the text is there ...
    for b in bodies:  # ... but never as an image, a link or HTML
        assert "![x](" not in b and "<script" not in b and "<img" not in b, b


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(created_at="2026-01-02T03:04:05"), "timezone"),
        (lambda d: d.update(created_at=(datetime.now(UTC) + timedelta(days=30)).isoformat()), "future"),
        (lambda d: d["workload"].update(name="w" * 300), "workload.name"),
        (lambda d: d["points"][0]["latency_ms"].update(min=5e-324), "latency_ms.min"),
        (lambda d: d["points"][0].update(batch_size=10**7), "batch_size"),
    ],
)
def test_an_upload_that_would_break_a_page_later_is_rejected_now(data: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    d = json.loads(shipped_files()[0].read_text())
    d.pop("id")
    edit(d)
    before = sorted(p.name for p in (data / "runs").iterdir())
    at = upload(app(), "bad.json", json.dumps(d).encode())
    assert any(message in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert sorted(p.name for p in (data / "runs").iterdir()) == before
    assert not at.success  # one message at a time: no earlier "Saved" beside the rejection


def test_a_broken_file_is_listed_with_its_reason_and_the_rest_still_work(
    data: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (data / "runs" / "zero.json").symlink_to("/dev/zero")
    (data / "runs" / "dangling.json").symlink_to(data / "nowhere.json")
    vals = data / "validations"
    vals.mkdir()
    shipped = json.loads(shipped_files()[0].read_text())
    short = shipped["id"].removeprefix("sha256:")[:12]
    (vals / f"validation-{short}-fp32-b1-20260101T000000Z.json").write_text('{"kind": "validation"')
    monkeypatch.setenv("FLEETWISE_VALIDATIONS_DIR", str(vals))
    at = app()
    warnings = [shown(w.value) for w in at.warning]
    assert any("zero.json was not loaded" in w and "not a regular file" in w for w in warnings), warnings
    assert any("dangling.json was not loaded" in w for w in warnings), warnings
    assert len(at.table[0].value) == len(shipped_files())
    pick = at.selectbox(key="run_pick")
    pick.set_value(next(o for o in pick.options if o.startswith(short))).run()
    assert not at.exception
    assert any("Validation file" in shown(w.value) and "not valid JSON" in w.value for w in at.warning)


def test_saving_a_scenario_never_overwrites_silently(data: Path) -> None:  # noqa: F811
    shipped = data / "scenarios" / "steady-api.yaml"
    before = shipped.read_text()
    at = app()
    at.switch_page("pages/scenario.py").run()
    at.selectbox(key="sc_base").set_value("steady-api").run()
    at.number_input(key="sc_steady-api_rate").set_value(120.0).run()
    at.button(key="sc_save").click().run()
    assert any("already exists" in e.value for e in at.error) and shipped.read_text() == before
    at.checkbox(key="sc_replace").check().run()
    at.button(key="sc_save").click().run()
    assert any("Saved" in s.value for s in at.success) and "rate_rps: 120.0" in shipped.read_text()


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("name: x\narrivals: {process: trace, path: /dev/zero}\nrequests: 10\n", "not a regular file"),
        ("name: x\narrivals: &a {process: poisson, rate_rps: 1}\nb: *a\nrequests: 10\n", "aliases"),
        ("name: x\nname: y\narrivals: {process: poisson, rate_rps: 1}\nrequests: 10\n", "duplicate key"),
        ("name: x\narrivals: {process: gamma, rate_rps: 1, cv: 1.0e-200}\nrequests: 10\n", "cv"),
    ],
)
def test_a_scenario_that_cannot_be_replayed_is_not_saved(data: Path, yaml_text: str, message: str) -> None:  # noqa: F811
    at = app()
    at.switch_page("pages/scenario.py").run()
    at.selectbox(key="sc_base").set_value("steady-api").run()
    at.toggle(key="sc_steady-api_yaml_on").set_value(True).run()
    at.text_area(key="sc_steady-api_yaml").set_value(yaml_text).run()
    assert not at.exception
    if message == "not a regular file":  # validates as a scenario; refused when saved
        at.button(key="sc_save").click().run()
        assert any("Not saved" in e.value and message in e.value for e in at.error), [
            e.value for e in at.error
        ]
        assert not (data / "scenarios" / "x.yaml").exists()
    else:
        assert any("Not valid" in e.value and message in shown(e.value) for e in at.error)


def test_the_html_report_renders_no_markup_from_a_run_or_price_book(tmp_path: Path) -> None:
    from measure.run import save_run
    from planner.fleet.plan import Question, make_plan
    from planner.fleet.prices import parse_prices
    from planner.fleet.report import evidence_for, render_html, render_markdown
    from planner.traffic.scenario import load_scenario
    from tests.conftest import ok_point

    run = make_run([ok_point("fp32", 1, 2.0), ok_point("fp32", 4, 3.0)], device_name=EVIL)
    run = run.model_copy(update={"workload": run.workload.model_copy(update={"name": EVIL, "unit": EVIL})})
    path = save_run(run, tmp_path)
    sc = load_scenario(REPO / "scenarios" / "steady-api.yaml")
    entry = {"source": EVIL, "as_of": "2026-01-01", "usd_per_hour": 1.0, "energy_included": True}
    book = parse_prices(
        {
            "kind": "price-book",
            "note": EVIL,
            "electricity": {"source": EVIL, "as_of": "2026-01-01", "usd_per_kwh": 0.1, "pue": 1.2},
            "devices": [{"device": EVIL, "match": ["alert"], "on_demand": entry}],
        }
    )
    q = Question(scenario=sc, runs=(str(path),), max_batches=(1, 4), max_delays_ms=(0.0,))
    plan = make_plan(q, book)
    md = render_markdown(plan, book, None, evidence_for([str(path)], tmp_path))
    page = render_html(md, "t")
    assert page.count("attacker.invalid") >= 4  # scenario-independent fields: device, workload, unit, prices
    tags = {t.lower() for t in re.findall(r"<\s*([a-zA-Z]+)", page)}
    assert not tags & {"script", "img", "a", "iframe", "object"}, tags
    assert "<script" not in md and "![x](" not in md


def test_the_html_report_renders_no_markup_from_a_file(tmp_path: Path) -> None:
    from planner.fleet.plan import Question, make_plan
    from planner.fleet.prices import load_prices
    from planner.fleet.report import ReportEvidence, render_html, render_markdown
    from planner.traffic.scenario import load_scenario

    sc = load_scenario(REPO / "scenarios" / "steady-api.yaml")
    sc = sc.model_copy(update={"name": EVIL, "description": EVIL})
    prof = tmp_path / "p.yaml"
    prof.write_text((REPO / "profiles" / "example-accelerator.yaml").read_text())
    q = Question(scenario=sc, runs=(), profiles=(str(prof),), max_batches=(1,), max_delays_ms=(0.0,))
    book = load_prices(REPO / "data" / "prices.yaml")
    book = book.model_copy(update={"note": EVIL})
    plan = make_plan(q, book)
    md = render_markdown(plan, book, None, ReportEvidence())
    page = render_html(md, "t")
    assert "attacker.invalid" in page and "&lt;script&gt;" in page
    tags = {t.lower() for t in re.findall(r"<\s*([a-zA-Z]+)", page)}
    assert not tags & {"script", "img", "a", "iframe", "object"}, tags  # only the report's own tags
    assert "<script" not in md and "![x](" not in md


MD_EVIL = "mlp [click](http://attacker.invalid/x) ![i](http://attacker.invalid/i.png) $x^2$ <b>bold</b>"


def test_table_cells_from_files_are_escaped_markdown(data: Path) -> None:  # noqa: F811
    run = make_run(device_name=MD_EVIL)
    run = run.model_copy(update={"workload": run.workload.model_copy(update={"name": "mlp-md"})})
    (data / "runs" / "md.json").write_text(dump_run(run.with_id()))
    at = app()
    table = at.table[0].value.reset_index()
    (cell,) = [c for c in table.to_numpy().ravel() if isinstance(c, str) and "attacker.invalid" in c]
    # st.table renders markdown: a link, an image, LaTeX or HTML must reach it escaped
    assert "[click](" not in cell and "![i](" not in cell and "$x" not in cell and "<b>" not in cell, cell
    assert "\\[click\\]" in cell and "&#36;x^2&#36;" in cell and "&lt;b&gt;" in cell
