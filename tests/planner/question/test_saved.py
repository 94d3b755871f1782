"""Saved plans side by side: the file keeps the question and the answer, is content-addressed, and the
comparison puts each plan's answer in the same figures and says when the questions differ."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from planner.question.saved import SavedPlanError, compare_plans, load_plan
from tests.conftest import REPO

SCENARIO = REPO / "scenarios" / "llm" / "llama-70b-chat.yaml"
PROFILES = REPO / "profiles" / "llm"


def sized(tmp: Path, profile: str, pricing: str, name: str, scenario: Path = SCENARIO) -> Path:
    before = set(tmp.glob("plan-*.json"))
    out = CliRunner().invoke(app, [
        "size", "--scenario", str(scenario), "--profiles", str(PROFILES / profile), "--max-num-seqs", "256",
        "--max-num-batched-tokens", "8192", "--pricing", pricing, "--save-plan", str(tmp), "--plan-name", name,
        "--json",
    ])  # fmt: skip
    assert out.exit_code == 0, out.output
    (new,) = set(tmp.glob("plan-*.json")) - before
    return new


def test_a_saved_plan_keeps_its_question_and_answer_and_an_edit_is_caught(tmp_path: Path) -> None:
    path = sized(tmp_path, "h200-llama-3.1-70b-tp8.yaml", "owned", "h200-owned")
    p = load_plan(path)
    assert p.plan_kind == "llm" and p.pricing == "owned" and p.scenario.name == "llama-70b-chat"
    assert p.question["profiles"] == [str(PROFILES / "h200-llama-3.1-70b-tp8.yaml")]
    (best,) = p.best_rows()
    plan = p.plan
    (o,) = plan["options"]
    assert best.monthly_usd == o["monthly_cost_usd"] and best.devices == o["devices_deployed"]
    assert best.source == "assumed" and p.answer == plan["answer"]
    assert best.slo_margin["p99 ttft <= 2000 ms"] == pytest.approx(o["slo"]["p99 ttft <= 2000 ms"] / 2000)
    data = json.loads(path.read_text())
    data["rows"][0]["monthly_usd"] = 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(SavedPlanError, match="id does not match"):
        load_plan(path)


def test_plans_side_by_side_in_the_same_figures_and_totals_over_years(tmp_path: Path) -> None:
    a = load_plan(sized(tmp_path, "h200-llama-3.1-70b-tp8.yaml", "on_demand", "h200-rent"))
    b = load_plan(sized(tmp_path, "b200-llama-3.1-70b-tp8.yaml", "owned", "b200-buy"))
    c = compare_plans([a, b], (1, 3))
    assert c.same_question and [p.name for p in c.plans] == ["h200-rent", "b200-buy"]
    for p, saved in zip(c.plans, (a, b), strict=True):
        assert p.row is not None and p.row.monthly_usd is not None
        assert p.totals_usd == {
            1: pytest.approx(p.row.monthly_usd * 12),
            3: pytest.approx(p.row.monthly_usd * 36),
        }
        assert p.worst_margin == max(v for v in p.row.slo_margin.values() if v is not None)
        assert p.row.devices == saved.plan["options"][0]["devices_deployed"]
    assert any("ASSUMED" in n for n in c.notes)
    out = CliRunner().invoke(
        app, ["compare-plans", *map(str, sorted(tmp_path.glob("plan-*.json"))), "--json"]
    )
    assert out.exit_code == 0 and len(json.loads(out.output)["plans"]) == 2


def test_plans_of_different_questions_say_so_and_one_plan_is_not_a_comparison(tmp_path: Path) -> None:
    a = load_plan(sized(tmp_path, "h200-llama-3.1-70b-tp8.yaml", "on_demand", "70b"))
    tiny = REPO / "scenarios" / "llm" / "tiny-chat.yaml"
    b = load_plan(sized(tmp_path, "cpu-tiny-fp32.yaml", "on_demand", "tiny", scenario=tiny))
    c = compare_plans([a, b])
    assert not c.same_question and any("different questions" in n for n in c.notes)
    with pytest.raises(SavedPlanError, match="at least two"):
        compare_plans([a])


def test_a_save_folder_that_cannot_be_written_is_refused_before_any_sizing(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = CliRunner().invoke(app, ["size", "--scenario", str(SCENARIO), "--profiles",
                                   str(PROFILES / "h200-llama-3.1-70b-tp8.yaml"), "--save-plan", str(blocker)])  # fmt: skip
    assert out.exit_code == 2 and "not a folder" in out.output and "answer" not in out.output
    broken = tmp_path / "plan-x.json"
    broken.write_text("{")
    bad = CliRunner().invoke(app, ["compare-plans", str(broken), str(broken)])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_a_saved_plan_validates_against_the_schema_the_cli_prints(tmp_path: Path) -> None:
    import jsonschema

    path = sized(tmp_path, "h200-llama-3.1-70b-tp8.yaml", "reserved_3y", "h200-3y")
    out = CliRunner().invoke(app, ["schema", "plan"])
    assert out.exit_code == 0
    jsonschema.validate(json.loads(path.read_text()), json.loads(out.stdout))
