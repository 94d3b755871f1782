"""The runs catalogue: newest first, key facts, bad files reported without hiding the good ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from measure.run import Point, save_run
from planner.evidence.catalog import CatalogError, scan_runs
from tests.conftest import make_run, ok_point


def test_scan_orders_newest_first_and_counts_statuses(tmp_path: Path) -> None:
    old = make_run()
    new = make_run(
        [ok_point("bf16", 1), Point(precision="fp8", batch_size=1, status="unsupported", reason="cpu")]
    )
    new = new.model_copy(update={"created_at": datetime(2026, 6, 1, tzinfo=UTC)}).with_id()
    save_run(old, tmp_path)
    save_run(new, tmp_path)
    (tmp_path / "bad.json").write_text('{"schema_version": 1}')
    cat = scan_runs(tmp_path)
    assert [s.run.id for s in cat.runs] == [new.id, old.id]
    assert cat.runs[0].status_counts == {"ok": 1, "unsupported": 1}
    assert cat.runs[0].precisions == ["bf16", "fp8"] and cat.runs[0].ok_points == 1
    assert [p.name for p, _ in cat.rejected] == ["bad.json"]


def test_scan_of_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        scan_runs(tmp_path / "missing")
