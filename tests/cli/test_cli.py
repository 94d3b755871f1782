"""The command line: bad input gives one line and exit 2 with nothing written; good input writes one run."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.served import patience
from fleetwise_cli.main import app
from measure.run import load_run, save_run
from tests.conftest import make_run, shipped_run

runner = CliRunner()


def fleetwise_exe() -> str:
    """The console script of the interpreter running the tests (not another one found on PATH)."""
    beside = Path(sys.executable).parent / "fleetwise"
    found = str(beside) if beside.exists() else shutil.which("fleetwise")
    assert found, "the fleetwise console script is not installed"
    return found


FAST = ["--min-seconds-per-point", "0.05", "--max-seconds-per-point", "0.3", "--min-iterations", "10"]
TINY = ["-p", "in_features=16", "-p", "width=16", "-p", "layers=1", "-p", "classes=16"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workload", "resnet9000"], "unknown workload 'resnet9000'"),
        (["--workload", "mlp", "--batch", "1,x"], "malformed batch list"),
        (["--workload", "mlp", "--batch", "0"], "batch must be positive"),
        (["--workload", "mlp", "--precision", "fp64"], "unknown precision 'fp64'"),
        (["--workload", "mlp", "--device", "tpu"], "unknown device 'tpu'"),
        (["--workload", "mlp", "--device", "cuda:3"], "device 'cuda:3'"),
        (["--workload", "mlp", "--seq-len", "128"], "no sequence length"),
        (["--workload", "mlp", "-p", "depth=3"], "unknown parameter(s) depth"),
        (["--workload", "mlp", "-p", "width=-3"], "positive integer"),
        (["--workload", "mlp", "--ci-target", "0"], "ci_target"),
        (["--workload", "no_such_pkg.mod:make"], "cannot load user workload"),
        (["--workload", "tests.measure.fake_workloads:broken"], "must return UserWorkload"),
        ([], "--workload is required"),
        (["--workload", "mlp", "--idle-seconds", "-1"], "idle seconds"),
        (["--workload", "mlp", "--energy-window", "0"], "energy window"),
        (["--workload", "mlp", "--soak", "soon"], "malformed duration"),
        (["--workload", "mlp", "--batch", "1,2", "--soak", "1m"], "--soak measures one point"),
        (
            ["--workload", "mlp", "--batch", "1", "--soak", "20s", "--soak-window", "10s"],
            "fewer than 4 windows",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "runs"
    result = runner.invoke(app, ["measure", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert result.output.strip().count("\n") == 0 or "error:" in result.output.splitlines()[0]
    assert not out.exists()


def test_measure_writes_a_valid_run_and_prints_its_path_last(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    result = runner.invoke(
        app,
        [
            "measure",
            "-w",
            "mlp",
            *TINY,
            "--precision",
            "fp32,tf32",
            "--batch",
            "1,2",
            *FAST,
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    files = list(out.glob("*.json"))
    assert len(files) == 1
    assert result.output.strip().splitlines()[-1].replace("\n", "") == str(files[0])
    run = load_run(files[0])
    assert [p.status for p in run.points if p.precision == "tf32"] == ["unsupported", "unsupported"]
    assert "tensor-core" in result.output  # the unsupported reason is in the summary table


def test_resume_finishes_an_interrupted_run_and_removes_the_partial_file(tmp_path: Path) -> None:
    from measure.batch.sweep import run_sweep
    from measure.core.parsing import Progress
    from measure.core.steady_state import SamplingConfig
    from measure.inprocess.plan import SweepRequest

    class StopAfterOne(Progress):
        def point_done(self, point: object) -> None:
            raise KeyboardInterrupt

    req = SweepRequest(
        "mlp",
        {"in_features": 16, "width": 16, "layers": 1, "classes": 16},
        "cpu",
        ["fp32"],
        [1, 2],
        sampling=SamplingConfig(min_seconds=0.05, max_seconds=0.3, min_iterations=10),
    )
    partial = save_run(run_sweep(req, StopAfterOne()).run, tmp_path)
    result = runner.invoke(app, ["measure", "--resume", str(partial), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1 and files[0] != partial
    assert load_run(files[0]).sweep.complete
    again = runner.invoke(app, ["measure", "--resume", str(files[0]), "--out", str(tmp_path)])
    assert again.exit_code == 2 and "complete run" in again.output


def test_runs_lists_valid_files_and_names_the_broken_ones(tmp_path: Path) -> None:
    save_run(make_run(), tmp_path)
    (tmp_path / "junk.json").write_text("{not json")
    result = runner.invoke(app, ["runs", str(tmp_path)])
    assert result.exit_code == 0
    assert "mlp" in result.output and "junk.json" in result.output and "not valid JSON" in result.output
    missing = runner.invoke(app, ["runs", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_schema_run_prints_the_json_schema() -> None:
    result = runner.invoke(app, ["schema", "run"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Run" and "points" in schema["properties"]


def test_console_script_is_installed_and_answers() -> None:
    exe = fleetwise_exe()
    proc = subprocess.run([exe, "measure", "--workload", "nope"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: unknown workload 'nope'")
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_ctrl_c_saves_finished_points_as_a_resumable_run(tmp_path: Path) -> None:
    exe = fleetwise_exe()
    args = [
        exe,
        "measure",
        "-w",
        "mlp",
        *TINY,
        "--batch",
        ",".join(str(b) for b in range(1, 41)),
        "--min-seconds-per-point",
        "0.2",
        "--max-seconds-per-point",
        "0.4",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # torch import plus a few points; 40 points cannot finish in this time
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    files = list(tmp_path.glob("*.json"))
    if not files:  # a very slow machine may not finish one point: then nothing is written, and it says so
        assert "nothing written" in stderr
        return
    run = load_run(files[0])
    assert not run.sweep.complete and 0 < len(run.points) < 40
    assert "--resume" in stderr and stdout.strip().splitlines()[-1] == str(files[0])


def test_runs_json_is_machine_readable(tmp_path: Path) -> None:
    run = make_run()
    save_run(run, tmp_path)
    (tmp_path / "junk.json").write_text("[]")
    result = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert [r["id"] for r in data["runs"]] == [run.id]
    assert data["runs"][0]["status_counts"] == {"ok": 2} and data["runs"][0]["complete"] is True
    assert (
        data["rejected"][0]["path"].endswith("junk.json") and "JSON object" in data["rejected"][0]["reason"]
    )


def test_show_prints_the_context_and_table_of_a_run_and_rejects_a_bad_file(tmp_path: Path) -> None:
    path = save_run(make_run(), tmp_path)
    result = runner.invoke(app, ["show", str(path)])
    assert result.exit_code == 0
    assert (
        "perf_counter_ns+synchronize" in result.output
        and "Test CPU" in result.output
        and "fp32" in result.output
    )
    path.write_text(path.read_text().replace('"batch_size": 4', '"batch_size": -4'))
    bad = runner.invoke(app, ["show", str(path)])
    assert bad.exit_code == 2 and "batch_size" in bad.output


def test_reasons_with_brackets_are_printed_verbatim_not_eaten_as_markup(tmp_path: Path) -> None:
    from measure.run import Point

    reason = "failed to run (RuntimeError: [enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator)"
    run = make_run([Point(precision="fp32", batch_size=1, status="unsupported", reason=reason)])
    result = runner.invoke(app, ["show", str(save_run(run, tmp_path))])
    assert result.exit_code == 0
    flat = re.sub(r"[\s│]", "", result.output)  # the table wraps and frames the reason
    assert "[enforcefailatalloc_cpu.cpp:117]" in flat
    bad = runner.invoke(app, ["measure", "-w", "mlp", "--batch", "[bold]1", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and "[bold]1" in bad.output


def test_a_user_workload_next_to_the_user_is_measured_through_the_console_script(tmp_path: Path) -> None:
    (tmp_path / "my_model.py").write_text(
        "import torch\n"
        "from measure.workloads.builtin import UserWorkload\n"
        "def make(hidden=8):\n"
        "    return UserWorkload(module=torch.nn.Linear(hidden, hidden),\n"
        "                        build_input=lambda b, s: torch.randn(b, hidden), unit='requests',\n"
        "                        description='my linear')\n"
    )
    exe = fleetwise_exe()
    proc = subprocess.run(
        [exe, "measure", "-w", "my_model:make", "-p", "hidden=16", "--batch", "1", *FAST, "--out", "runs"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    run = load_run(next((tmp_path / "runs").glob("*.json")))
    assert run.workload.source == "my_model:make" and run.workload.unit == "requests"
    assert run.workload.parameters == {"hidden": 16} and run.points[0].flops_per_item == 2 * 16 * 16


def test_a_soak_from_the_command_line_prints_windows_and_a_verdict(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["measure", "-w", "mlp", *TINY, "--batch", "4", "--soak", "2s", "--soak-window", "0.5s"]
    result = runner.invoke(app, [*args, "--idle-seconds", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (path,) = out.glob("*.json")
    run = load_run(path)
    assert run.soak is not None and run.soak.windows
    ws = run.soak.windows
    assert all(a.end_s == b.start_s for a, b in itertools.pairwise(ws))  # cut at chunk edges, no gap
    # windows end at chunk edges: on a busy machine one chunk may outlast several 0.5 s windows
    assert len(ws) >= (3 if patience(1.0) == 1.0 else 1)
    assert "soak:" in result.output and run.soak.verdict.split(":")[0] in result.output.replace("\n", " ")
    assert result.output.strip().endswith(path.name)


ROOT = Path(__file__).resolve().parents[2]
PROFILE = str(ROOT / "profiles" / "example-accelerator.yaml")
STEADY = str(ROOT / "scenarios" / "steady-api.yaml")


def test_simulate_json_has_the_documented_keys_and_is_the_same_for_the_same_seed() -> None:
    args = [
        "simulate",
        "--profile",
        PROFILE,
        "--scenario",
        STEADY,
        "--replicas",
        "6",
        "--router",
        "jsq",
        "--max-batch",
        "8",
        "--max-delay-ms",
        "4",
        "--requests",
        "20000",
        "--seed",
        "3",
        "--json",
    ]
    a, b = runner.invoke(app, args), runner.invoke(app, args)
    assert a.exit_code == 0, a.output
    assert a.stdout == b.stdout
    res = json.loads(a.stdout)
    for key in (
        "latency_ms",
        "queue_ms",
        "offered_rps",
        "throughput_rps",
        "utilization",
        "rejected",
        "stable",
        "requests_measured",
        "energy_j_per_request",
        "source",
        "inputs",
    ):
        assert key in res, key
    assert set(res["latency_ms"]) == {"mean", "p50", "p90", "p95", "p99", "p999"} == set(res["queue_ms"])
    assert (
        res["source"] == "assumed"
        and res["inputs"]["seed"] == 3
        and res["inputs"]["router"] == "least-outstanding"
    )  # jsq, by its one name
    assert res["energy_j_per_request"] > 0


def test_simulate_prints_the_source_and_slo_verdicts_for_a_measured_run() -> None:
    run = shipped_run("mlp")
    result = runner.invoke(
        app,
        [
            "simulate",
            "--run",
            str(run),
            "--precision",
            "fp32",
            "--scenario",
            STEADY,
            "--max-batch",
            "8",
            "--max-delay-ms",
            "1",
            "--requests",
            "5000",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "measured" in result.output
        and "SLO p99 latency <= 100 ms" in result.output
        and "met" in result.output
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scenario", STEADY], "exactly one of --run or --profile"),
        (["--profile", PROFILE, "--scenario", STEADY, "--router", "smart"], "unknown batch router"),
        (["--profile", PROFILE, "--scenario", STEADY, "--max-batch", "16"], "above what the model can serve"),
        (["--profile", PROFILE, "--scenario", STEADY, "--replicas", "0"], "replicas must be"),
        (["--profile", PROFILE, "--scenario", STEADY, "--max-delay-ms", "-1"], "max_delay"),
        (["--profile", PROFILE, "--scenario", "/nonexistent.yaml"], "cannot read"),
        (["--profile", STEADY, "--scenario", STEADY], "not an assumed profile"),
    ],
)
def test_simulate_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["simulate", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_an_invalid_scenario_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narrivals: {process: poisson, rate_rps: 0}\nrequests: 10\n")
    result = runner.invoke(app, ["simulate", "--profile", PROFILE, "--scenario", str(bad)])
    assert result.exit_code == 2 and "arrivals.poisson.rate_rps" in result.output


def test_overload_says_stable_false_instead_of_percentiles() -> None:
    result = runner.invoke(
        app, ["simulate", "--profile", PROFILE, "--scenario", STEADY, "--requests", "2000", "--json"]
    )
    res = json.loads(result.stdout)
    assert (
        res["stable"] is False and res["latency_ms"] is None and res["sustainable_rps"] < res["offered_rps"]
    )


def test_version_prints_the_installed_version() -> None:
    import importlib.metadata

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"fleetwise {importlib.metadata.version('fleetwise')}\n"


def test_schema_scenario_profile_and_price_book_print_json_schemas() -> None:
    for kind, field in (
        ("scenario", "arrivals"),
        ("profile", "points"),
        ("price-book", "devices"),
        ("engine-benchmark", "levels"),
        ("llm-validation", "levels"),
    ):
        result = runner.invoke(app, ["schema", kind])
        assert result.exit_code == 0 and field in json.loads(result.stdout)["properties"]


def test_a_confidence_interval_below_a_nanosecond_prints_as_zero() -> None:
    from fleetwise_cli.render.simulation import _ms
    from planner.serving.simulation import Summary

    s = Summary(mean=6.254e-12, p50=0.0, p90=1.5, p95=2.0, p99=2.5, p999=3.0)
    assert [_ms(s, k) for k in ("mean", "p50", "p90")] == ["0", "0", "1.5"]
    assert _ms(None, "mean") == "-"
