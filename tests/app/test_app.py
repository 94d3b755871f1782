"""Every page of the Streamlit app through AppTest: renders, key widgets present, uploads judged correctly."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO, make_run, shipped_files

APP = str(REPO / "app.py")


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The shipped runs and scenarios copied to a scratch folder: uploads and saves never touch the repo."""
    runs, scenarios = tmp_path / "runs", tmp_path / "scenarios"
    runs.mkdir()
    for f in shipped_files():
        shutil.copy(f, runs)
    shutil.copytree(REPO / "scenarios", scenarios)
    monkeypatch.setenv("FLEETWISE_RUNS_DIR", str(runs))
    monkeypatch.setenv("FLEETWISE_SCENARIOS_DIR", str(scenarios))
    return tmp_path


def shown(markdown: str) -> str:
    """Markdown as the reader sees it: backslash escapes (the app escapes every file-supplied string) removed."""
    return re.sub(r"\\(.)", r"\1", markdown)


def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    assert not at.exception, at.exception
    return at


def test_runs_page_lists_the_runs_and_draws_the_curves(data: Path) -> None:
    at = app()
    assert at.title[0].value == "Measured runs"
    table = at.table[0].value.reset_index()
    assert len(table) == len(shipped_files()) and {"run", "workload", "device", "points ok"} <= set(
        table.columns
    )
    pick = at.selectbox(key="run_pick")
    pick.set_value(next(o for o in pick.options if " · llm" not in o)).run()  # a batch run
    assert len(at.get("plotly_chart")) == 2  # throughput and latency; the point series waits for a point
    assert any("not measured on this run" in i.value for i in at.info)  # the CPU runs have no power
    point = at.selectbox(key="run_point")
    point.set_value(point.options[0]).run()
    assert not at.exception and len(at.get("plotly_chart")) == 3


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("notes.json", b"this is not json", "not valid JSON"),
        ("list.json", b"[1, 2]", "must hold a JSON object"),
        ("nan.json", None, "NaN"),
        ("negative.json", None, "raw_latencies_ms.0: Input should be greater than or equal to"),
        ("tampered.json", None, "content id mismatch"),
        ("latin1.json", '{"a": "\xe9"}'.encode("latin-1"), "not UTF-8"),
    ],
)
def test_a_bad_upload_is_rejected_with_the_reason_and_nothing_is_saved(
    data: Path, name: str, content: bytes | None, message: str
) -> None:
    good = json.loads(shipped_files()[0].read_text())
    if name == "nan.json":
        content = json.dumps(good).replace('"mean": ', '"mean": NaN, "x": ', 1).encode()
    elif name == "negative.json":
        good["points"][0]["raw_latencies_ms"] = [-1.0]
        content = json.dumps(good).encode()
    elif name == "tampered.json":
        good["command"] = ["edited"]
        content = json.dumps(good).encode()
    before = sorted(p.name for p in (data / "runs").iterdir())
    at = app()
    assert content is not None
    at.file_uploader(key="upload").upload(name, content, "application/json").run()
    assert not at.exception
    assert any(message in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert sorted(p.name for p in (data / "runs").iterdir()) == before


def test_a_good_upload_is_saved_and_listed_and_a_repeat_is_recognised(data: Path) -> None:
    run = make_run()
    from measure.run import dump_run

    text = dump_run(run).encode()
    at = app()
    at.file_uploader(key="upload").upload("mine.json", text, "application/json").run()
    assert any("Saved run" in s.value for s in at.success), [s.value for s in at.success]
    assert len(at.table[0].value) == len(shipped_files()) + 1
    at.file_uploader(key="upload").set_value(None).run()
    at.file_uploader(key="upload").upload("again.json", text, "application/json").run()
    assert any("Already present" in s.value for s in at.success)
    assert len(list((data / "runs").glob("*.json"))) == len(shipped_files()) + 1


def test_scenario_page_validates_live_and_saves(data: Path) -> None:
    at = app()
    at.switch_page("pages/scenario.py").run()
    assert not at.exception and any("Valid scenario" in s.value for s in at.success)
    assert at.selectbox(key="sc_base").options
    at.selectbox(key="sc_base").set_value("steady-api").run()
    at.number_input(key="sc_steady-api_rate").set_value(120.0).run()
    assert any("peak 120 requests/s" in s.value for s in at.success)
    at.text_input(key="sc_steady-api_name").set_value("steady-120").run()
    at.button(key="sc_save").click().run()
    saved = data / "scenarios" / "steady-120.yaml"
    assert saved.exists() and "rate_rps: 120.0" in saved.read_text()
    at.toggle(key="sc_steady-api_yaml_on").set_value(True).run()
    at.text_area(key="sc_steady-api_yaml").set_value(
        "name: x\narrivals: {process: poisson, rate_rps: -1}\n"
    ).run()
    assert any("Not valid" in e.value and "rate_rps" in shown(e.value) for e in at.error)


def size(at: AppTest) -> AppTest:
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("steady-api")
    at.selectbox(key="sz_model").set_value("mlp").run()
    assert at.multiselect(key="sz_runs_mlp").value  # switching the model selects all of its runs
    at.multiselect(key="sz_profiles").set_value(["example-accelerator.yaml"])
    at.multiselect(key="sz_prec").set_value(["fp32"])
    at.multiselect(key="sz_batch").set_value([4])
    at.multiselect(key="sz_delay").set_value([0.0])
    at.number_input(key="sz_requests").set_value(3000)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def test_sizing_page_answers_with_separate_cost_and_efficiency_columns(data: Path) -> None:
    at = size(app())
    assert not at.error, [e.value for e in at.error]
    table = at.dataframe[0].value
    assert {
        "monthly $",
        "$ per 1k requests",
        "$ per 1M tokens",
        "units per J",
        "replicas",
        "meets SLO",
    } <= set(table.columns)
    assert set(table.source) == {"measured", "assumed"} and table["meets SLO"].all()
    assert len(at.get("plotly_chart")) >= 2


def test_slo_explorer_moves_the_cost_with_the_threshold(data: Path) -> None:
    at = size(app())
    at.switch_page("pages/slo_explorer.py").run()
    assert not at.exception, at.exception
    slider = at.slider(key="slo_ms")
    tight = at.dataframe[0].value
    slider.set_value(slider.min).run()
    assert not at.exception
    at_min = at.dataframe[0].value
    slider.set_value(slider.max).run()
    at_max = at.dataframe[0].value
    cost = lambda df: df["monthly $"].fillna(float("inf")).sum()  # noqa: E731
    assert cost(at_min) >= cost(tight) >= cost(at_max)
    assert len(at.get("plotly_chart")) == 3
    missed = at_min[at_min["replicas"].isna()]
    assert (missed["why not"].str.startswith("misses by")).all()  # never a bare None


def test_slo_explorer_starts_at_the_scenarios_own_slo_even_beyond_the_simulated_range(data: Path) -> None:
    at = size(app())
    at.switch_page("pages/slo_explorer.py").run()
    slider = at.slider(key="slo_ms")
    assert slider.value == 100.0 and slider.min <= 100.0 <= slider.max  # steady-api: p99 <= 100 ms


def test_compare_page_shows_the_comparability_check_first(data: Path) -> None:
    at = app()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    pick = at.multiselect(key="cmp_runs")
    two = [next(o for o in pick.options if "· mlp ·" in o), next(o for o in pick.options if "· cnn ·" in o)]
    pick.set_value(two).run()
    assert at.error and "NOT comparable" in at.error[0].value and "workload.name" in at.error[0].value
    assert len(at.get("plotly_chart")) >= 2
    cnn = [o for o in pick.options if "· cnn ·" in o]
    if len(cnn) >= 2:  # two runs of one workload and methodology: comparable, with the per-point tests
        at.multiselect(key="cmp_runs").set_value(cnn[:2]).run()
        assert any("comparable" in s.value for s in at.success)


def test_report_page_offers_the_downloads_of_the_current_plan(data: Path) -> None:
    at = size(app())
    at.switch_page("pages/report.py").run()
    assert not at.exception
    assert len(at.get("download_button")) == 4
    assert any("## Evidence" in m.value for m in at.markdown)


def test_runs_page_shows_a_runs_live_validation(data: Path) -> None:
    shipped = sorted((REPO / "data" / "validations").glob("validation-*.json"))
    if not shipped:
        pytest.skip("no validation file is shipped")
    short = json.loads(shipped[0].read_text())["run_id"].removeprefix("sha256:")[:12]
    at = app()
    pick = at.selectbox(key="run_pick")
    pick.set_value(next(o for o in pick.options if o.startswith(short))).run()
    assert not at.exception
    assert any("Prediction checked live" in h.value for h in at.subheader)
    tables = [t.value for t in at.table]
    assert any("p50 error" in t.columns for t in tables)


def test_an_oversized_upload_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import planner.evidence.catalog as catalog

    monkeypatch.setattr(catalog, "MAX_RUN_FILE_BYTES", 1000)
    with pytest.raises(ValueError, match="over the 1,000 byte limit"):
        catalog.accept_upload(b"{" + b" " * 2000 + b"}", tmp_path, [])
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_app_and_the_cli_give_the_same_plan_for_the_same_question(data: Path) -> None:
    from typer.testing import CliRunner

    from fleetwise_cli.main import app as cli

    at = app()
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("steady-api")
    at.selectbox(key="sz_model").set_value("cnn").run()  # outside the form: set before the form's fields
    at.number_input(key="sz_requests").set_value(3000)
    at.button[
        0
    ].click().run()  # every other field at its default: the model's runs, all profiles, default grids
    assert not at.exception, at.exception
    in_app = at.session_state["plan"]
    assert in_app["sizing_requests"] == 3000
    args = ["size", "--scenario", str(data / "scenarios" / "steady-api.yaml"), "--requests", "3000", "--json"]
    args += [a for f in sorted((data / "runs").glob("cnn-*.json")) for a in ("--runs", str(f))]
    args += [a for p in sorted((REPO / "profiles").glob("*.yaml")) for a in ("--profiles", str(p))]
    result = CliRunner().invoke(cli, [*args, "--jobs", "2"])
    assert result.exit_code == 0, result.output
    in_cli = json.loads(result.stdout)

    def answers(plan: dict) -> dict:  # type: ignore[type-arg]
        return {
            (o["label"], o["max_batch"], o["max_delay_ms"]): (o["replicas"], o["monthly_cost_usd"], o["rank"])
            for o in plan["options"]
        }

    assert answers(in_app) == answers(in_cli) and in_app["answer"] == in_cli["answer"]
    assert in_app["skipped"] == in_cli["skipped"]


def test_the_sizing_page_shows_every_warning_of_the_plan(data: Path) -> None:
    at = size(app())
    warnings = {w for o in at.session_state["plan"]["options"] for w in o["warnings"]}
    assert warnings  # the assumed profile always warns
    shown_warnings = [shown(w.value) for w in at.warning]
    for w in warnings:
        assert any(w in s for s in shown_warnings), (w, shown_warnings)


def test_the_sizing_page_answers_for_one_model_and_charts_one_group_at_a_time(data: Path) -> None:
    at = size(app())
    plan = at.session_state["plan"]
    measured = {o["group"] for o in plan["options"] if o["source"] == "measured"}
    assert len(measured) == 1 and next(iter(measured)).startswith("mlp ")  # no cnn or encoder option
    assert at.radio(key="sz_chart_group").options  # measured and assumed groups: charts pick one
    for fig in at.get("plotly_chart"):
        spec = json.loads(fig.proto.spec)
        names = {t.get("name") for t in spec["data"]}
        assert not ("measured" in names and "assumed" in names), names


def test_a_run_from_a_machine_the_price_book_does_not_know_is_sized_and_shown_not_priced(data: Path) -> None:
    from measure.run import save_run
    from tests.conftest import ok_point

    amd = make_run([ok_point("fp32", 1, 2.0), ok_point("fp32", 4, 3.0)], device_name="Ampere Altra Q80-30")
    save_run(amd, data / "runs")  # workload "mlp", like the shipped mlp run
    at = size(app())
    assert not at.error, [e.value for e in at.error]
    plan = at.session_state["plan"]
    unpriced = [o for o in plan["options"] if o["not_priced"]]
    priced = [o for o in plan["options"] if o["rank"] == 1]
    assert unpriced and all("Ampere Altra Q80-30" in o["not_priced"] for o in unpriced)
    assert all(o["replicas"] is not None for o in unpriced) and priced  # the priced options still answer
    assert any("not priced" in shown(w.value) and "Ampere Altra Q80-30" in shown(w.value) for w in at.warning)
    at.number_input(key="sp_plan_params_0").set_value(2.5)
    at.button(key="FormSubmitter:session_prices_plan_params-Price them and re-plan").click().run()
    assert not at.exception, at.exception
    repriced = at.session_state["plan"]
    amd_options = [o for o in repriced["options"] if o["device"] == "Ampere Altra Q80-30"]
    assert amd_options and all(o["price_entry"] == "Ampere Altra Q80-30 (user-supplied)" for o in amd_options)
    assert all(
        o["monthly_cost_usd"] == pytest.approx(2.5 * 730 * o["replicas_deployed"]) for o in amd_options
    )
    at.switch_page("pages/report.py").run()
    assert any("user-supplied in the app session" in shown(m.value) for m in at.markdown)


def test_viewing_the_scenario_page_does_not_change_the_sizing_pages_scenario(data: Path) -> None:
    at = app()
    at.switch_page("pages/scenario.py").run()
    at.selectbox(key="sc_base").set_value("diurnal-chat").run()
    at.switch_page("pages/sizing.py").run()
    assert not any(o.startswith("from the Scenario page") for o in at.selectbox(key="sz_scenario").options)
    at.switch_page("pages/scenario.py").run()
    at.selectbox(key="sc_base").set_value("steady-api").run()
    at.number_input(key="sc_steady-api_rate").set_value(120.0).run()
    at.switch_page("pages/sizing.py").run()
    assert at.selectbox(key="sz_scenario").value == "from the Scenario page: steady-api"


def test_runs_page_shows_paced_bins_and_contended_points_or_warns_of_optimism(data: Path) -> None:
    from measure.run import save_run
    from tests.conftest import make_run
    from tests.planner.serving.test_paced import contended_point, paced_point

    busy = contended_point(4, 0.6)
    run = make_run([paced_point(1, 10.0, 5.0, 20.0), busy]).with_id()
    save_run(run, data / "runs")
    at = app()
    pick = at.selectbox(key="run_pick")
    unpaced = next(s for s in shipped_files() if "mlp-" in s.name)  # measured back to back only
    short = json.loads(unpaced.read_text())["id"].removeprefix("sha256:")[:12]
    pick.set_value(next(o for o in pick.options if o.startswith(short))).run()
    assert any("optimistic under intermittent load" in w.value for w in at.warning)
    pick = at.selectbox(key="run_pick")
    pick.set_value(next(o for o in pick.options if o.startswith(run.short_id()))).run()
    assert not at.exception
    paced = next(t.value for t in at.table if "back to back p50 ms" in t.value.columns)
    ratio = float(shown(paced["after 5 ms: p50 ms (x b2b)"].iloc[0]).split("(x")[1].rstrip(")"))  # as read
    assert ratio == pytest.approx(2.0, rel=0.05)
    assert any("batch 4: other processes used 60%" in w.value for w in at.warning)


def test_an_llm_run_is_shown_by_phase_and_kept_out_of_batch_sizing(data: Path) -> None:
    at = app()
    pick = at.selectbox(key="run_pick")
    llm = [o for o in pick.options if " · llm" in o]
    assert llm, "the shipped LLM runs are listed"
    for label in llm:
        pick.set_value(label).run()
        assert not at.exception, at.exception
        titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
        assert any("prompt tokens" in t for t in titles) and any("vs context" in t for t in titles)
        pick = at.selectbox(key="run_pick")
    at.switch_page("pages/sizing.py").run()
    assert not at.exception
    assert all(not m.startswith("llm") for m in at.selectbox(key="sz_model").options)
    assert any("LLM run(s)" in c.value for c in at.caption)


def test_the_compare_page_starts_from_batch_runs_and_takes_llm_runs_without_curves(data: Path) -> None:
    at = app()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    pick = at.multiselect(key="cmp_runs")
    assert all(" · llm" not in v for v in pick.value)
    pick.set_value([o for o in pick.options if " · llm" in o]).run()
    assert not at.exception, at.exception
    assert any("LLM runs are compared" in c.value for c in at.caption)


def _tiny_chat_form() -> AppTest:
    """The sizing page on tiny-chat, the LLM form at fp32, max_num_seqs 64 and 2,048 tokens a step."""
    at = app()
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("tiny-chat").run()
    assert not at.exception, at.exception
    at.multiselect(key="llm_prec").set_value(["fp32"])
    at.multiselect(key="llm_seqs").set_value([64])
    at.multiselect(key="llm_tokens").set_value([2048])
    return at


def test_a_generative_scenario_is_sized_on_llm_runs_with_ttft_and_tpot_slos(data: Path) -> None:
    at = _tiny_chat_form()
    at.button[0].click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert {"replicas", "meets SLO", "$/1M output tokens", "p99 ttft ms", "p99 tpot ms"} <= set(table.columns)
    assert table["meets SLO"].all() and (table["replicas"] >= 1).all()
    # the machine the shipped runs were measured on is in the shipped price book: the demo shows money
    assert table["monthly $"].str.startswith("$").all(), table["monthly $"]
    assert not any("not priced" in str(v) for v in table["why / not priced"])
    assert any("measured" in m.value for m in at.markdown)


def test_the_llm_sizing_form_sizes_with_and_without_the_prefix_cache_side_by_side(data: Path) -> None:
    at = _tiny_chat_form()
    at.multiselect(key="llm_prefix").set_value(["on", "off"])
    at.button[0].click().run()
    assert not at.exception, at.exception
    cached = at.dataframe[0].value["prefix cache (prompt tokens cached)"]
    # tiny-chat names no prefixes: the cached option finds nothing, and the warnings say why
    assert sorted(cached.unique()) == ["0.0%", "off"], cached
    assert any("no prefix" in w.value.lower() or "nothing" in w.value.lower() for w in at.warning), [
        w.value for w in at.warning
    ]


def test_a_generative_plan_is_priced_in_session_explored_on_ttft_and_tpot_and_reported(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    book = yaml.safe_load((REPO / "data" / "prices.yaml").read_text())
    book["devices"] = [d for d in book["devices"] if d["device"] != "cpu-2vcpu-amd-vm"]  # a machine it lacks
    (data / "prices.yaml").write_text(yaml.safe_dump(book))
    monkeypatch.setenv("FLEETWISE_PRICES", str(data / "prices.yaml"))
    at = _tiny_chat_form()
    at.button[0].click().run()
    assert not at.exception, at.exception
    # the unpriced CPU priced for this session: the plan gets costs, labelled user-supplied
    at.number_input(key="sp_llm_params_0").set_value(2.0)
    at.button(key="FormSubmitter:session_prices_llm_params-Price them and re-plan").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert table["monthly $"].str.startswith("$").all(), table["monthly $"]
    replicas = int(table["replicas"].iloc[0])
    assert table["monthly $"].iloc[0] == f"${replicas * 2.0 * 730:,.0f}"

    at.switch_page("pages/slo_explorer.py").run()
    assert not at.exception, at.exception
    ttft, tpot = at.slider(key="llm_slo_ttft"), at.slider(key="llm_slo_tpot")
    assert ttft.value == 100.0 and tpot.value == 15.0  # tiny-chat's own SLOs, inside the ranges
    explored = at.dataframe[0].value
    assert (
        int(explored["replicas"].iloc[0]) <= replicas
    )  # the sized count meets them; the ladder may do better
    ttft.set_value(ttft.min).run()  # below any simulated p99 TTFT: no count meets it, and the page says why
    why = at.dataframe[0].value["why not"].iloc[0]
    assert "TTFT misses by" in why, why
    assert len(at.get("plotly_chart")) == 3

    at.switch_page("pages/report.py").run()
    assert not at.exception, at.exception
    body = shown(at.markdown[-1].value)
    assert "LLM fleet sizing report: tiny-chat" in body
    assert "(user-supplied)" in body and "p99 ttft <= 100 ms" in body.replace("&lt;", "<")


def test_an_engine_benchmark_upload_is_imported_and_the_engine_runs_validation_is_shown(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = data / "benchmarks"
    monkeypatch.setenv("FLEETWISE_BENCHMARKS_DIR", str(bench))
    at = app()
    fixture = REPO / "tests" / "fixtures" / "benchmarks" / "guidellm-0.8.1-benchmarks.json"
    at.text_input(key="upload_hw").set_value("1x NVIDIA H200")
    at.file_uploader(key="upload").upload("benchmarks.json", fixture.read_bytes(), "application/json").run()
    assert not at.exception, at.exception
    assert any("Imported: guidellm" in shown(s.value) for s in at.success), [s.value for s in at.success]
    (saved,) = bench.glob("bench-guidellm-*.json")
    from planner.evidence.engine_benchmark import load_benchmark

    assert load_benchmark(saved).hardware == "1x NVIDIA H200"  # what the user said the engine ran on
    assert not list((data / "runs").glob("bench-*"))  # evidence of its own kind, not a run
    assert any("Engine benchmarks (1 imported" in e.label for e in at.expander)
    # the shipped engine run that has a shipped live validation shows it, with the verdict
    from measure.run import load_run
    from planner.evidence.llm_validation import scan_llm_validations

    validated = 0
    ids = {r.short_id(): r.id for r in map(load_run, (data / "runs").glob("llm-engine-*.json"))}
    pick = at.selectbox(key="run_pick")
    for label in [o for o in pick.options if any(short in o for short in ids)]:
        pick.set_value(label).run()
        assert not at.exception, at.exception
        run_id = next(i for short, i in ids.items() if short in label)
        found, _ = scan_llm_validations(run_id, REPO / "data" / "validations")
        heads = [h.value for h in at.subheader]
        assert ("Live validation against the engine" in heads) == bool(found)
        validated += bool(found) and any("Verdict" in shown(x.value) for x in [*at.success, *at.warning])
        pick = at.selectbox(key="run_pick")
    from planner.evidence.llm_validation import load_llm_validation

    shipped = {
        load_llm_validation(f).run_id for f in (REPO / "data" / "validations").glob("llm-validation-*.json")
    }
    # transformers serve's engine run, vLLM's, and vLLM's with prefix caching
    assert validated == len(shipped & set(ids.values())) == 3
    # a file that is neither a run nor a known result: rejected with the reason, nothing saved
    at.file_uploader(key="upload").set_value(None).run()
    at.file_uploader(key="upload").upload(
        "x.json", b'{"benchmarks": [], "metadata": {}}', "application/json"
    ).run()
    assert at.error and "Rejected" in at.error[0].value and len(list(bench.glob("*.json"))) == 1


def test_the_runs_page_re_predicts_a_recorded_llm_validation_without_the_cli(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The validation workflow's prediction lives in the planner: the app re-predicts recorded traffic, saves it
    beside the original, and the figures are those `fleetwise validate --recheck` computes."""
    from measure.run import load_run
    from planner.evidence.llm_validation import load_llm_validation
    from planner.llm.validate import recheck

    folder = data / "validations"
    folder.mkdir()
    original = REPO / "data" / "validations" / "llm-validation-be0a55eb155d-fp32-20261129T142710Z.json"
    shutil.copy(original, folder)
    monkeypatch.setenv("FLEETWISE_VALIDATIONS_DIR", str(folder))
    at = app()
    pick = at.selectbox(key="run_pick")
    pick.set_value(next(o for o in pick.options if "be0a55eb155d" in o)).run()
    assert not at.exception, at.exception
    (button,) = [b for b in at.button if b.label.startswith("Re-predict this traffic")]
    button.click().run()
    assert not at.exception, at.exception
    assert any("Re-predicted and saved as" in shown(s.value) for s in at.success), [
        s.value for s in at.success
    ]
    (saved,) = folder.glob("*-recheck-*.json")
    again = load_llm_validation(saved)
    run = load_run(next((data / "runs").glob("llm-engine-*be0a55eb155d.json")))
    expected = recheck(load_llm_validation(original), run, original.name)
    assert again.recheck_of == original.name
    assert [lv.predicted for lv in again.levels] == [lv.predicted for lv in expected.levels]
    assert [lv.measured for lv in again.levels] == [lv.measured for lv in expected.levels]
    first = load_llm_validation(original).levels[0].measured
    assert (
        first is not None and again.levels[0].measured is not None
    )  # the file's own measurements, recomputed
    assert again.levels[0].measured.ttft.p50_ms == pytest.approx(
        first.ttft.p50_ms, abs=1e-3
    )  # records keep 1 us


def test_a_benchmark_sweep_is_one_curve_sized_and_explored(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four vllm rate files picked on the LLM form are one option; the SLO explorer answers any threshold
    from that curve (no 'nothing to explore'), and says why where the curve cannot meet it."""
    import yaml

    from planner.evidence.engine_benchmark import save_benchmark
    from tests.planner.llm.test_bench_curve import SWEEP, vllm_file

    bench = data / "benchmarks"
    for s in SWEEP:
        save_benchmark(vllm_file(*s), bench)
    monkeypatch.setenv("FLEETWISE_BENCHMARKS_DIR", str(bench))
    (data / "scenarios" / "chat-8b.yaml").write_text(yaml.safe_dump({
        "name": "chat-8b", "arrivals": {"process": "poisson", "rate_rps": 100},
        "llm": {"prompt": {"dist": "fixed", "value": 200}, "output": {"dist": "fixed", "value": 32}},
        "slo": [{"metric": "ttft", "percentile": 99, "threshold_ms": 200}], "requests": 3000,
    }))  # fmt: skip
    at = app()
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("chat-8b").run()
    at.multiselect(key="llm_runs").set_value([])
    benches = at.multiselect(key="llm_benches")
    benches.set_value(list(benches.options))
    at.button[0].click().run()
    assert not at.exception, at.exception
    (row,) = at.dataframe[0].value.to_dict("records")  # four files, one curve
    assert row["benchmark files"].count(",") == 3 and "rate 16" in row["capacity between levels"]
    sized = int(row["replicas"])

    at.switch_page("pages/slo_explorer.py").run()
    assert not at.exception, at.exception
    ttft = at.slider(key="bench_slo_ttft")
    assert ttft.value == 200.0  # the scenario's own objective
    assert int(at.dataframe[0].value["replicas"].iloc[0]) == sized
    ttft.set_value(ttft.min).run()  # tighter than the slowest level: no count, and why
    explored = at.dataframe[0].value.iloc[0]
    assert explored["replicas"] is None or explored["replicas"] != explored["replicas"]  # None or NaN
    assert "already misses" in explored["why not"]
    assert len(at.get("plotly_chart")) == 2  # replicas against the TTFT and the TPOT threshold


def test_an_assumed_h200_profile_sizes_llama_70b_labelled_assumed(data: Path) -> None:
    """Hardware nobody here owns: the roofline profile is picked on the LLM form, the tiny run the form
    pre-selects is left out as another model, and the answer and table say ASSUMED."""
    at = app()
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("llama-70b-chat").run()
    at.multiselect(key="llm_profiles").set_value(["h200-llama-3.1-70b-tp8"])
    at.multiselect(key="llm_seqs").set_value([256])
    at.multiselect(key="llm_tokens").set_value([8192])
    at.button[0].click().run()
    assert not at.exception, at.exception
    answer = shown(next(m.value for m in at.markdown if "ASSUMED, not measured" in m.value))
    assert "ASSUMED (roofline, not measured)" in answer and "a month" in answer
    table = at.dataframe[0].value
    assert (table["device"] == "ASSUMED NVIDIA H200").all()
    assert any("left out" in w.value and "Llama-3.1-70B" in shown(w.value) for w in at.warning)
    at.switch_page("pages/report.py").run()
    assert not at.exception, at.exception
    assert "**ASSUMED** profile `h200-llama-3.1-70b-tp8`" in shown(at.markdown[-1].value)


def test_the_form_keeps_the_question_of_its_answer_after_a_visit_elsewhere(data: Path) -> None:
    """Sized steady-api for mlp, then to the Runs page and back: the form still says steady-api and mlp (it
    used to fall back to its defaults beside the old answer), and a form changed but not sized says the answer
    is for the question last sized."""
    at = size(app())
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/sizing.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="sz_scenario").value == "steady-api"
    assert at.selectbox(key="sz_model").value == "mlp"
    assert at.multiselect(key="sz_batch").value == [4] and at.number_input(key="sz_requests").value == 3000
    assert not any("last sized" in w.value for w in at.warning)
    at.selectbox(key="sz_scenario").set_value("bursty-api").run()
    assert any("last sized" in w.value and "steady-api" in w.value for w in at.warning)
    # the LLM form too (a form's values count once it is submitted)
    at.selectbox(key="sz_scenario").set_value("tiny-chat").run()
    at.multiselect(key="llm_seqs").set_value([64])
    at.multiselect(key="llm_tokens").set_value([2048])
    at.button[0].click().run()
    at.switch_page("pages/compare.py").run()
    at.switch_page("pages/sizing.py").run()
    assert at.selectbox(key="sz_scenario").value == "tiny-chat" and at.multiselect(key="llm_seqs").value == [
        64
    ]
    assert not any("last sized" in w.value for w in at.warning)


def test_two_plans_saved_from_the_sizing_page_are_compared_side_by_side(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """H200 rented against owned: each answer saved with the form under it, then the Compare plans page
    shows both in the same figures with their 1- and 3-year totals."""
    monkeypatch.setenv("FLEETWISE_PLANS_DIR", str(data / "plans"))
    at = app()
    at.switch_page("pages/compare_plans.py").run()
    assert any("Save at least two plans" in i.value for i in at.info)
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("llama-70b-chat").run()
    for pricing in ("on_demand", "owned"):
        at.multiselect(key="llm_runs").set_value([])
        at.multiselect(key="llm_profiles").set_value(["h200-llama-3.1-70b-tp8"])
        at.multiselect(key="llm_seqs").set_value([256])
        at.multiselect(key="llm_tokens").set_value([8192])
        at.selectbox(key="llm_pricing").set_value(pricing)
        at.button[0].click().run()
        assert not at.exception, at.exception
        at.text_input(key="save_name_llm").set_value(f"h200-{pricing}")
        at.button(key="FormSubmitter:save_llm-Save plan").click().run()
        assert any("Saved plan-h200" in s.value for s in at.success), [s.value for s in at.success]
    assert len(list((data / "plans").glob("plan-*.json"))) == 2
    at.switch_page("pages/compare_plans.py").run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert sorted(table["plan"]) == ["h200-on_demand", "h200-owned"]
    assert (table["evidence"] == "ASSUMED").all() and {"1-year total $", "3-year total $"} <= set(
        table.columns
    )
    owned = table[table["plan"] == "h200-owned"].iloc[0]
    rented = table[table["plan"] == "h200-on_demand"].iloc[0]
    dollars = lambda v: float(v.strip("$").replace(",", ""))  # noqa: E731
    assert dollars(owned["3-year total $"]) == pytest.approx(dollars(owned["monthly $"]) * 36, rel=1e-3)
    assert dollars(owned["monthly $"]) < dollars(rented["monthly $"])


def test_the_llm_sizing_form_sizes_aggregated_and_disaggregated_side_by_side(data: Path) -> None:
    at = _tiny_chat_form()
    at.multiselect(key="llm_split").set_value(["aggregated", "disaggregated"])
    at.number_input(key="llm_kv_bytes").set_value(8192)
    at.button[0].click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    modes = sorted(table["prefill + decode"].tolist())
    assert "aggregated" in modes and any(" + " in m for m in modes), modes
    at.switch_page("pages/slo_explorer.py").run()  # both modes' ladders: the split rungs labelled P+D
    assert not at.exception, at.exception
    explored = at.dataframe[0].value
    assert any(" + " in str(v) for v in explored["prefill + decode"]), explored
    at.switch_page("pages/report.py").run()
    assert not at.exception, at.exception
    assert " prefill + " in shown(at.markdown[-1].value)  # the report names the split


def test_a_diurnal_generative_scenario_plans_its_day_under_the_sizing_form(data: Path) -> None:
    """tiny-chat-day at a 4 req/s peak on the shipped vLLM run: the day section plans the hourly schedule at two
    start-up times (the table's device-hours and ramp misses, a chart of replicas by hour); a start-up that is
    not a number is one visible line."""
    day = data / "scenarios" / "llm" / "tiny-chat-day.yaml"
    sc = yaml.safe_load(day.read_text())
    sc["arrivals"]["peak_rate_rps"] = 4
    day.write_text(yaml.safe_dump(sc))
    at = app()
    at.switch_page("pages/sizing.py").run()
    at.selectbox(key="sz_scenario").set_value("tiny-chat-day").run()
    assert not at.exception, at.exception
    run = next(o for o in at.selectbox(key="day_run").options if o.startswith("69d44a28d1eb"))
    at.selectbox(key="day_run").set_value(run)
    at.text_input(key="day_startups").set_value("0,60")
    next(b for b in at.button if b.label == "Plan the day").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert list(table["start-up s"]) == ["0", "0", "60", "60"]
    assert (table["device-hours a day"] >= 24).all()  # at least one replica every hour
    assert any(c.value.startswith("each hour sized") for c in at.caption)
    assert at.get("plotly_chart")
    assert any(c.value.startswith("Not priced") for c in at.caption)  # the engine run's device has no price
    at.text_input(key="day_startups").set_value("0,soon")
    next(b for b in at.button if b.label == "Plan the day").click().run()
    assert any("'soon' is not a number" in e.value for e in at.error), [e.value for e in at.error]


def test_an_engine_runs_timed_start_up_is_shown_with_it(data: Path) -> None:
    """A run measured with --engine-pid shows its start-up beside the engine's self-description; the shipped
    one, measured without it, says nothing of a start-up."""
    from measure.run import EngineStartup, load_run, save_run

    shipped = load_run(REPO / "data" / "runs" / "llm-engine-cpu-20261206T112537Z-69d44a28d1eb.json")
    assert shipped.llm is not None and shipped.llm.engine is not None
    timed = EngineStartup(seconds=30.3, answered_after_s=30.2, how="process 7: a test's figure")
    llm = shipped.llm.model_copy(update={"engine": shipped.llm.engine.model_copy(update={"startup": timed})})
    run = save_run(shipped.model_copy(update={"llm": llm}).with_id(), data / "runs")
    at = app()
    pick = at.selectbox(key="run_pick")
    for short, said in ((load_run(run).short_id(), True), (shipped.short_id(), False)):
        pick.set_value(next(o for o in pick.options if o.startswith(short))).run()
        assert not at.exception, at.exception
        shown = [c.value for c in at.caption if "Engine start-up" in c.value]
        assert bool(shown) == said and (not said or "30.3 s to the first token" in shown[0]), shown
        pick = at.selectbox(key="run_pick")
