"""Sizing workers start clean: the parent's script (under Streamlit, the app page) is never re-run in them."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from planner.fleet.sizing import in_workers


def _imports_in_worker(_task: Any) -> bool:
    return "streamlit" in sys.modules


def test_a_worker_does_not_rerun_the_parents_main_script(tmp_path: Path, monkeypatch: Any) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "page.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nimport streamlit\n")
    page = types.ModuleType("__main__")
    page.__file__ = str(script)  # what Streamlit puts in sys.modules while it runs a page
    monkeypatch.setitem(sys.modules, "__main__", page)
    seen = in_workers(_imports_in_worker, [object(), object(), object()], 2, None)  # type: ignore[list-item]
    assert seen == [False, False, False]
    assert not marker.exists()
    assert sys.modules["__main__"] is page  # the parent's own main is back
