"""Sizing workers start clean: the parent's script (under Streamlit, the app page) is never re-run in them."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from planner.workers import in_workers


def _imports_in_worker(_task: Any) -> bool:
    return "streamlit" in sys.modules


def test_a_worker_does_not_rerun_the_parents_main_script(tmp_path: Path, monkeypatch: Any) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nimport streamlit\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)  # what Streamlit puts in sys.modules while it runs a page
    monkeypatch.setitem(sys.modules, "__main__", page)
    # a thread running, as in the app's server: workers then start from a forkserver, the case where a
    # re-run page used to import Streamlit in every worker (a plain fork would inherit the parent's modules)
    hold = threading.Event()
    server = threading.Thread(target=hold.wait, daemon=True)
    server.start()
    try:
        seen = in_workers(_imports_in_worker, [object(), object(), object()], 2, None)  # type: ignore[list-item]
    finally:
        hold.set()
        server.join()
    assert seen == [False, False, False]
    assert not marker.exists()
    assert sys.modules["__main__"] is page  # the parent's own main is back


def test_the_executor_is_an_argument_and_the_environment_only_gives_the_default() -> None:
    from planner.workers import ExecutorError, check_executor, executor_from_env

    assert executor_from_env({}) == "local"
    assert executor_from_env({"FLEETWISE_RAY_ADDRESS": "ray://head:10001"}) == "ray"
    assert executor_from_env({"FLEETWISE_EXECUTOR": "local", "FLEETWISE_RAY_ADDRESS": "ray://h:1"}) == "local"
    with pytest.raises(ExecutorError, match="FLEETWISE_EXECUTOR='dask'"):
        executor_from_env({"FLEETWISE_EXECUTOR": "dask"})
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        check_executor("dask")
    with pytest.raises(ExecutorError, match="unknown executor"):
        in_workers(_imports_in_worker, [object()], 1, None, "dask")  # type: ignore[arg-type,list-item]


def test_a_run_replaced_under_the_same_name_is_read_again(tmp_path: Path) -> None:
    from measure.run import load_run
    from planner.workers import load_run_cached

    shipped = sorted((Path(__file__).resolve().parents[2] / "data" / "runs").glob("*.json"))
    first, second = load_run(shipped[0]), load_run(shipped[1])
    path = tmp_path / "run.json"
    path.write_bytes(shipped[0].read_bytes())
    assert load_run_cached(path).id == first.id
    assert load_run_cached(str(path)) is load_run_cached(path)  # parsed once while unchanged
    path.write_bytes(shipped[1].read_bytes())  # what the app's upload or a re-measure does to a file name
    assert load_run_cached(path).id == second.id
