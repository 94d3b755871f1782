"""Hostile input, round 2 (the LLM and benchmark surfaces): small files that would make work without bound,
imports that amplify, symlink loops in shared folders, and values that parse but cannot have been measured.
Each is refused with one `error:` line (exit 2) or listed with its reason, quickly."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from planner.evidence.bench_import import import_file
from planner.evidence.engine_benchmark import BenchmarkFileError, load_benchmark
from tests.conftest import REPO

runner = CliRunner()
LLM_RUN = next((REPO / "data" / "runs").glob("llm-engine-cpu-*be0a55eb155d.json"))


def one_error_line(output: str) -> str:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), output
    return lines[0]


def vllm_result(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "backend": "vllm", "model_id": "m", "request_rate": 4.0, "burstiness": 1.0, "max_concurrency": None,
        "completed": 100, "failed": 0, "duration": 25.0, "request_throughput": 4.0, "output_throughput": 200.0,
        "total_input_tokens": 20_000, "total_output_tokens": 5_000,
        "mean_ttft_ms": 20.0, "median_ttft_ms": 18.0, "p99_ttft_ms": 60.0,
        "mean_tpot_ms": 5.0, "median_tpot_ms": 5.0, "p99_tpot_ms": 9.0,
    }  # fmt: skip
    return base | over


def test_a_tiny_scenario_of_huge_outputs_is_refused_by_the_work_budget(tmp_path: Path) -> None:
    sc = tmp_path / "huge.yaml"
    sc.write_text(
        "name: huge\narrivals: {process: poisson, rate_rps: 1}\nrequests: 3000\n"
        "llm: {prompt: {dist: fixed, value: 8}, output: {dist: fixed, value: 1048576}}\n"
    )
    assert len(sc.read_bytes()) < 200
    t0 = time.monotonic()
    res = runner.invoke(
        app, ["simulate", "--run", str(LLM_RUN), "--scenario", str(sc), "--kv-blocks", "99999"]
    )
    assert res.exit_code == 2, res.output
    assert "over the budget of 10,000,000 output tokens" in one_error_line(res.output)
    assert time.monotonic() - t0 < 30


def test_a_benchmark_level_that_would_replay_for_hours_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "vllm.json"
    f.write_text(json.dumps(vllm_result(completed=190_000, total_output_tokens=190_000 * 2_000_000)))
    res = runner.invoke(app, ["import", str(f), "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "output_tokens" in one_error_line(res.output), res.output
    f.write_text(json.dumps(vllm_result(completed=190_000, total_output_tokens=190_000 * 1000)))
    res = runner.invoke(
        app, ["validate", "--benchmark", str(f), "--run", str(LLM_RUN), "--kv-blocks", "99999"]
    )
    assert res.exit_code in (0, 2), res.output
    assert "over the budget" in res.output  # 190M output tokens: refused before any replay


@pytest.mark.parametrize(
    ("over", "why"),
    [
        ({"median_ttft_ms": 80.0, "p99_ttft_ms": 60.0}, "percentiles out of order"),
        ({"median_ttft_ms": -1.0, "mean_ttft_ms": -1.0, "p99_ttft_ms": -1.0}, "a negative value"),
        ({"request_throughput": 5e-324}, "request throughput"),
        ({"request_throughput": 1e-300}, "request throughput"),
        ({"request_rate": 1e308}, "rate_rps"),
        ({"total_input_tokens": 1e15}, "prompt_tokens"),
        ({"total_output_tokens": 1e308}, "output_tokens"),
        ({"p99_e2el_ms": 1e12, "median_e2el_ms": 1.0}, "over an hour"),
    ],
)
def test_benchmarks_that_could_not_have_been_measured_are_refused(
    tmp_path: Path, over: dict[str, object], why: str
) -> None:
    f = tmp_path / "vllm.json"
    f.write_text(json.dumps(vllm_result(**over)))
    with pytest.raises(BenchmarkFileError, match=why) as err:
        import_file(f)
    assert "\n" not in str(err.value) and len(str(err.value)) < 700


def test_per_request_samples_must_agree_with_the_stated_summary(tmp_path: Path) -> None:
    n = 50
    detailed = {
        "input_lens": [200] * n, "output_lens": [50] * n, "ttfts": [3000.0] * n, "itls": [[0.005] * 49] * n,
        "completed": n, "median_ttft_ms": 1.55, "mean_ttft_ms": 1.55, "p99_ttft_ms": 2.0,
    }  # fmt: skip
    f = tmp_path / "vllm.json"
    f.write_text(json.dumps(vllm_result(**detailed)))
    with pytest.raises(BenchmarkFileError, match="disagree with the stated p50"):
        import_file(f)
    f.write_text(json.dumps(vllm_result(**(detailed | {"ttfts": [0.0016] * n}))))
    assert import_file(f).levels[0].requests[0].ttft_ms == pytest.approx(1.6)


def test_a_guidellm_file_of_empty_records_is_refused_before_it_amplifies(tmp_path: Path) -> None:
    bench = {"config": {"strategy": {"type_": "constant", "rate": 1}}, "metrics": {},
             "requests": {"successful": [{}] * 60_000}}  # fmt: skip
    data = {"metadata": {"version": 2, "guidellm_version": "0.4"}, "benchmarks": [bench] * 5}
    f = tmp_path / "g.json"
    f.write_text(json.dumps(data))
    t0 = time.monotonic()
    with pytest.raises(BenchmarkFileError, match=r"300,000 per-request records; fleetwise imports at most"):
        import_file(f)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(
    "cfg", [{"phases": "x"}, {"phases": [1, "a", None]}, {"models": {"items": 5}}, {"models": "m"}]
)
def test_aiperf_fields_of_the_wrong_type_are_read_as_absent(tmp_path: Path, cfg: dict[str, object]) -> None:
    data = {
        "schema_version": "1.0", "aiperf_version": "0.3", "input_config": cfg,
        "time_to_first_token": {"avg": 20.0, "p50": 18.0, "p99": 40.0, "unit": "ms"},
        "request_count": {"avg": 10},
    }  # fmt: skip
    f = tmp_path / "a.json"
    f.write_text(json.dumps(data))
    res = runner.invoke(app, ["import", str(f), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    (out,) = (tmp_path / "b").glob("bench-*.json")
    assert load_benchmark(out).model == "unknown"


def _loop(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(folder / f"{name}.b.json", folder / f"{name}.json")
    os.symlink(folder / f"{name}.json", folder / f"{name}.b.json")


def test_symlink_loops_in_shared_folders_are_listed_not_fatal(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / LLM_RUN.name).write_bytes(LLM_RUN.read_bytes())
    _loop(runs, "llm-loop")
    os.symlink(tmp_path / "nowhere.json", runs / "dangling.json")
    res = runner.invoke(app, ["runs", str(runs)])
    assert res.exit_code == 0, res.output
    assert "symbolic link loop" in res.output and "dangling" in res.output
    for cmd in (["show", str(runs / "llm-loop.json")], ["import", str(runs / "llm-loop.json")]):
        res = runner.invoke(app, [*cmd, "--help"] if cmd[0] == "nothing" else cmd)
        assert res.exit_code == 2 and "symbolic link loop" in one_error_line(res.output), res.output
    sc = tmp_path / "trace.yaml"
    sc.write_text(f"name: t\narrivals: {{process: trace, path: {runs / 'llm-loop.json'}}}\nrequests: 10\n")
    batch_run = next((REPO / "data" / "runs").glob("mlp-cpu-*.json"))
    res = runner.invoke(
        app, ["simulate", "--run", str(batch_run), "--scenario", str(sc), "--precision", "fp32"]
    )
    assert res.exit_code == 2 and "symbolic link loop" in one_error_line(res.output), res.output


def test_terminal_escapes_in_names_never_reach_the_terminal(tmp_path: Path) -> None:
    from measure.run import save_run
    from tests.conftest import make_run

    evil = "EPYC\x1b[2J\x1b[H ALL CHECKS PASSED \x1b]8;;http://attacker.invalid\x1b\\link\x1b]8;;\x1b\\ \x9b31m\u202e"
    path = save_run(make_run(device_name=evil), tmp_path / "runs")
    for args in (["runs", str(tmp_path / "runs")], ["show", str(path)]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
        assert "ALL CHECKS PASSED" in res.output and "\\x1b[2J" in res.output  # shown, as text
        assert not any(c in res.output for c in "\x1b\x9b\u202e"), repr(res.output[:400])
    f = tmp_path / "vllm.json"
    f.write_text(json.dumps(vllm_result(model_id="m\x1b[31mred", backend="\x07vllm")))
    res = runner.invoke(app, ["import", str(f), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0 and "\x1b" not in res.output and "\x07" not in res.output, res.output


@pytest.mark.parametrize(
    ("cell", "shown"), [("abc", "'abc'"), ("", "an empty cell"), ("-7", "'-7'"), ("2.5", "'2.5'")]
)
def test_trace_token_cells_that_are_no_count_are_refused_not_read_as_one(
    tmp_path: Path, cell: str, shown: str
) -> None:
    (tmp_path / "t.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.0,374,44\n"
        f"2023-11-16 18:15:47.0,100,{cell}\n"
        "2023-11-16 18:15:48.0,50,5\n"
    )
    sc = tmp_path / "s.yaml"
    sc.write_text(
        "name: t\narrivals: {process: trace, path: t.csv}\nrequests: 30\n"
        "llm: {prompt: {dist: trace}, output: {dist: trace, column: GeneratedTokens}}\n"
    )
    res = runner.invoke(
        app, ["simulate", "--run", str(LLM_RUN), "--scenario", str(sc), "--kv-blocks", "9999"]
    )
    assert res.exit_code == 2, res.output
    line = one_error_line(res.output)
    assert "GeneratedTokens" in line and "not whole token counts" in line and shown in line, line


def test_json_output_never_holds_nan_or_infinity(capsys: pytest.CaptureFixture[str]) -> None:
    from fleetwise_cli.common import write_json

    write_json({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -float("inf")}})
    assert json.loads(capsys.readouterr().out) == {"a": None, "b": [1.0, None], "c": {"d": None}}


def test_a_token_budget_of_one_cannot_make_a_simulation_of_endless_steps(tmp_path: Path) -> None:
    sc = tmp_path / "steps.yaml"
    sc.write_text(
        "name: steps\narrivals: {process: poisson, rate_rps: 1}\nrequests: 3000\n"
        "llm: {prompt: {dist: fixed, value: 10000}, output: {dist: fixed, value: 8}}\n"
    )
    args = ["simulate", "--run", str(LLM_RUN), "--scenario", str(sc), "--kv-blocks", "99999"]
    res = runner.invoke(app, [*args, "--max-num-batched-tokens", "1"])
    assert res.exit_code == 2, res.output
    assert "over the budget of 20,000,000" in one_error_line(res.output) and "engine steps" in res.output


def _validation(tmp_path: Path, edit: object) -> Path:
    src = sorted((REPO / "data" / "validations").glob("llm-validation-be0a55eb155d-*Z.json"))[0]  # LLM_RUN's
    data = json.loads(src.read_text())
    edit(data)  # type: ignore[operator]
    f = tmp_path / "v.json"
    f.write_text(json.dumps(data))
    return f


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d["levels"][0]["requests_sent"][0].update(prompt_tokens=1_000_000), "KV"),
        (lambda d: d["levels"][0]["requests_sent"][0].update(ttft_ms=900.0, e2e_ms=100.0), "before ttft_ms"),
        (lambda d: d["levels"][0].update(load=-5), "load"),
    ],
)
def test_a_recheck_of_an_impossible_validation_file_is_one_error_line(
    tmp_path: Path, edit: object, why: str
) -> None:
    f = _validation(tmp_path, edit)
    args = ["validate", "--recheck", str(f), "--run", str(LLM_RUN), "--out", str(tmp_path / "out")]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert why in one_error_line(res.output)
    assert not list((tmp_path / "out").glob("*.json"))


def test_sizing_a_scenario_past_the_work_budget_says_so_once_before_any_worker(tmp_path: Path) -> None:
    sc = tmp_path / "huge.yaml"
    sc.write_text(
        "name: huge\narrivals: {process: poisson, rate_rps: 1}\nrequests: 3000\n"
        "llm: {prompt: {dist: fixed, value: 8}, output: {dist: fixed, value: 1048576}}\n"
        "slo: [{metric: ttft, percentile: 99, threshold_ms: 100}]\n"
    )
    res = runner.invoke(app, ["size", "--scenario", str(sc), "--runs", str(LLM_RUN), "--kv-blocks", "99999"])
    assert res.exit_code == 2, res.output
    line = one_error_line(res.output)
    assert line.count("over the budget") == 1 and "10,000,000 output tokens" in line, line


def test_an_interrupt_swallowed_during_start_up_stops_the_sweep_at_its_first_point() -> None:
    import io

    from rich.console import Console

    from fleetwise_cli.errors import INTERRUPTED, on_interrupt_signal
    from fleetwise_cli.render.progress import RichProgress

    try:
        with contextlib.suppress(BaseException):  # what a library's bare `except:` does during an import
            on_interrupt_signal(2, None)
        with RichProgress(Console(file=io.StringIO())) as progress:
            progress.start(3)
            with pytest.raises(KeyboardInterrupt):
                progress.point_started("fp32", 1, None)
    finally:
        INTERRUPTED.clear()


def test_a_full_disk_after_the_work_saves_it_to_the_temp_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import tempfile

    import typer

    from fleetwise_cli.errors import save_or_fallback

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    full = tmp_path / "full"

    def save(folder: Path) -> Path:
        if folder == full:
            raise OSError(errno.ENOSPC, "No space left on device")
        target = folder / "level.json"
        target.write_text("{}")
        return target

    with pytest.raises(typer.Exit) as ex:
        save_or_fallback(save, full, "validation file")
    assert ex.value.exit_code == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and str(tmp_path / "tmp" / "level.json") in err.replace("\n", "")
    assert (tmp_path / "tmp" / "level.json").exists()


def test_an_app_upload_converts_at_most_20000_records_and_names_the_cli_for_more(tmp_path: Path) -> None:
    from planner.evidence.bench_import import UPLOAD_MAX_RECORDS, accept_benchmark_upload

    n = UPLOAD_MAX_RECORDS + 1
    detailed = {"input_lens": [100] * n, "output_lens": [20] * n, "ttfts": [0.02] * n, "itls": [[]] * n}
    raw = json.dumps(vllm_result(completed=n, **detailed)).encode()
    with pytest.raises(BenchmarkFileError, match="import a larger one with `fleetwise import`"):
        accept_benchmark_upload(raw, tmp_path)
    assert not list(tmp_path.iterdir())
    f = tmp_path / "big.json"
    f.write_bytes(raw)
    assert len(import_file(f).levels[0].requests) == n  # the command line takes it
