"""Hostile files and arguments at the command line: no code runs from a data file, no file breaks a listing,
bad output paths are refused before the work, and every refusal is one `error:` line with exit code 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fleetwise_cli.main import app
from measure.run import SCHEMA_VERSION, Workload, dump_run, load_run, save_run
from tests.cli.test_cli import FAST, TINY
from tests.conftest import REPO, make_run

runner = CliRunner()


def user_run(tmp_path: Path, marker: Path, *, complete: bool = False) -> Path:
    """An incomplete run that records a user factory whose only effect is writing `marker`."""
    run = make_run()
    work = Workload(
        name="touch",
        source="tests.cli.marker_workload:touch",
        description="marker",
        parameters={"path": str(marker)},
        unit="samples",
        microbenchmark=False,
        has_seq_len=False,
    )
    sweep = run.sweep.model_copy(update={"complete": complete})
    return save_run(run.model_copy(update={"workload": work, "sweep": sweep}), tmp_path / "runs")


def test_resume_never_imports_a_factory_the_file_names(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = user_run(tmp_path, marker)
    result = runner.invoke(app, ["measure", "--resume", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "name it yourself to confirm: --workload tests.cli.marker_workload:touch" in result.output
    assert not marker.exists()
    wrong = runner.invoke(
        app, ["measure", "--resume", str(path), "--workload", "tests.measure.fake_workloads:tiny"]
    )
    assert wrong.exit_code == 2 and "does not match" in wrong.output and not marker.exists()


def test_resume_runs_a_user_factory_only_when_the_user_names_it(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = user_run(tmp_path, marker)
    args = ["measure", "--resume", str(path), "--workload", "tests.cli.marker_workload:touch"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "failed to build" in result.output
    assert marker.read_text() == "called\n"  # named on the command line: the user's own code ran


def test_validate_never_imports_a_factory_the_file_names(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = user_run(tmp_path, marker, complete=True)
    scenario = REPO / "scenarios" / "steady-api.yaml"
    result = runner.invoke(
        app, ["validate", "--run", str(path), "--scenario", str(scenario), "--out", str(tmp_path / "v")]
    )
    assert result.exit_code == 2 and "--workload tests.cli.marker_workload:touch" in result.output
    assert not marker.exists()


def test_a_builtin_run_naming_a_module_is_refused(tmp_path: Path) -> None:
    run = make_run()
    # a file claiming source builtin with a module:function name must not reach the user-factory loader
    evil = run.model_copy(update={"workload": run.workload.model_copy(update={"name": "os:system"})})
    evil = evil.model_copy(update={"sweep": evil.sweep.model_copy(update={"complete": False})})
    path = save_run(evil, tmp_path)
    result = runner.invoke(app, ["measure", "--resume", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "not one of" in result.output


def test_a_file_naming_a_factory_with_shell_text_is_rejected_on_load(tmp_path: Path) -> None:
    data = json.loads(dump_run(make_run()))
    data["workload"]["source"] = "os:system; rm -rf /"
    data.pop("id")
    p = tmp_path / "x.json"
    p.write_text(json.dumps(data))
    result = runner.invoke(app, ["show", str(p)])
    assert result.exit_code == 2 and "workload.source" in result.output


def test_markup_in_run_text_is_printed_literally(tmp_path: Path) -> None:
    run = make_run(device_name="[/bold][red]evil[link=http://x]")
    run = run.model_copy(update={"workload": run.workload.model_copy(update={"unit": "[/]"})})
    path = save_run(run, tmp_path)
    listed = runner.invoke(app, ["runs", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    shown = runner.invoke(app, ["show", str(path)])
    assert shown.exit_code == 0, shown.output
    assert "[/bold][red]evil" in shown.output


def test_a_naive_or_future_timestamp_is_refused_and_the_listing_still_works(tmp_path: Path) -> None:
    good = save_run(make_run(), tmp_path)
    data = json.loads(dump_run(make_run()))
    data.pop("id")
    data["created_at"] = "2026-01-02T03:04:05"  # no timezone: compared with aware ones it raised TypeError
    (tmp_path / "naive.json").write_text(json.dumps(data))
    data["created_at"] = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    (tmp_path / "future.json").write_text(json.dumps(data))
    data = json.loads(dump_run(make_run()))
    data.update(schema_version=1, points=5)  # a v1 file whose points is a number
    (tmp_path / "v1.json").write_text(json.dumps(data))
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    result = runner.invoke(app, ["runs", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert [r["path"] for r in listing["runs"]] == [str(good)]
    why = {Path(r["path"]).name: r["reason"] for r in listing["rejected"]}
    assert "timezone" in why["naive.json"] and "future" in why["future.json"]
    assert "invalid run" in why["v1.json"] and "nested deeper" in why["deep.json"]


def test_duplicate_keys_and_a_bom_are_refused_by_the_cli_as_by_the_upload(tmp_path: Path) -> None:
    text = dump_run(make_run())
    head = f'{{\n "schema_version": {SCHEMA_VERSION},'
    dup = text.replace(head, f'{head} "schema_version": {SCHEMA_VERSION},', 1)
    assert dup != text
    (tmp_path / "dup.json").write_text(dup)
    (tmp_path / "bom.json").write_bytes(b"\xef\xbb\xbf" + text.encode())
    (tmp_path / "utf16.json").write_bytes(text.encode("utf-16"))
    for name, message in (("dup", "duplicate key"), ("bom", "byte-order mark"), ("utf16", "not UTF-8")):
        result = runner.invoke(app, ["show", str(tmp_path / f"{name}.json")])
        assert result.exit_code == 2 and message in result.output, result.output


def test_files_are_written_with_the_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = save_run(make_run(), tmp_path)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".*.tmp"))


def test_measure_refuses_an_unwritable_output_before_measuring(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import measure.batch.sweep

    def never(*a: object, **k: object) -> None:
        raise AssertionError("measured before checking the output folder")

    monkeypatch.setattr(measure.batch.sweep, "execute_sweep", never)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["measure", "-w", "mlp", *TINY, "--batch", "1", "--idle-seconds", "0"]
    result = runner.invoke(app, [*args, "--out", str(blocker / "runs")])
    assert result.exit_code == 2 and "not writable" in result.output, result.output


def test_size_refuses_an_unwritable_report_before_the_search(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import fleetwise_cli.commands.size

    def never(*a: object, **k: object) -> None:
        raise AssertionError("searched before checking the report path")

    monkeypatch.setattr(fleetwise_cli.commands.size, "answer", never)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    args = ["size", "--scenario", str(REPO / "scenarios" / "steady-api.yaml")]
    args += ["--profiles", str(REPO / "profiles" / "example-accelerator.yaml")]
    (tmp_path / "dir.html").mkdir()
    for report, message in ((blocker / "r.html", "is not a folder"), (tmp_path / "dir.html", "is a folder")):
        result = runner.invoke(app, [*args, "--report", str(report)])
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_soak_beyond_a_week_is_refused() -> None:
    result = runner.invoke(app, ["measure", "-w", "mlp", "--batch", "1", "--soak", "99999999999h"])
    assert result.exit_code == 2 and "not in (0, 7 days]" in result.output


def test_an_error_is_one_line_even_when_the_message_has_several(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text(
        'name: "first line\\nsecond line"\narrivals: {process: poisson, rate_rps: 10}\nrequests: 1000\n'
    )
    args = ["size", "--scenario", str(p), "--profiles", str(REPO / "profiles" / "example-accelerator.yaml")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "has no SLO" in result.output
    assert result.output.count("\n") == 1 and result.output.startswith("error:"), result.output


@pytest.mark.slow
def test_sigterm_saves_the_finished_points_like_ctrl_c(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["measure", "-w", "mlp", *TINY, "--batch", ",".join(str(b) for b in range(1, 201))]
    args += [*FAST, "--idle-seconds", "0", "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleetwise_cli.main", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(8)  # torch loads in about 3 s; then tiny points finish in well under a second each
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    (path,) = out.glob("*.json")
    run = load_run(path)
    assert not run.sweep.complete and 1 <= len(run.points) < 200


def test_a_full_disk_after_measuring_keeps_the_run_elsewhere(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import errno
    import tempfile

    import measure.run

    real = measure.run.save_run
    fallback = tmp_path / "fallback"
    fallback.mkdir()

    def full_then_real(run, folder):  # type: ignore[no-untyped-def]
        if Path(folder) != fallback:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(run, folder)

    monkeypatch.setattr(measure.run, "save_run", full_then_real)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(fallback))
    args = ["measure", "-w", "mlp", *TINY, "--batch", "1", *FAST, "--idle-seconds", "0"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2 and "No space left" in result.output and "saved it as" in result.output
    (kept,) = fallback.glob("*.json")
    assert load_run(kept).points
