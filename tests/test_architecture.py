"""The dependency direction of DESIGN.md: app -> planner -> measure.run (and measure.datafile, the strict file
readers measure.run is built on); readers never import torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLANNER_MAY_USE = ("measure.run", "measure.datafile")
TORCH_FREE = (
    "measure.run",
    "measure.datafile",
    "measure.stats",
    "measure.engine",
    "measure.telemetry",
    "planner.evidence.catalog",
    "planner.serving.simulation",
    "fleetwise_cli.main",
    # the engine client: measuring a remote engine is an HTTP client and runs where torch is not installed
    "measure.parsing",
    "measure.endpoint",
    "measure.endpoint_run",
    "measure.llm_live",
    "fleetwise_cli.llm_cmd",
    "fleetwise_cli.llm_validate",
    "fleetwise_cli.progress",
)


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_planner_imports_only_the_evidence_readers_from_measure_and_never_torch() -> None:
    for path in (ROOT / "planner").rglob("*.py"):
        for name in imports_of(path):
            assert not name.startswith("torch"), f"{path} imports {name}"
            if name.startswith("measure"):
                assert name in PLANNER_MAY_USE, (
                    f"{path} imports {name}; planner may use only {PLANNER_MAY_USE}"
                )


def test_readers_of_runs_load_without_importing_torch() -> None:
    code = "import sys\n" + "".join(f"import {m}\n" for m in TORCH_FREE) + "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def test_the_app_uses_the_planner_and_never_measure_or_torch() -> None:
    for path in [ROOT / "app.py", *(ROOT / "pages").glob("*.py")]:
        for name in imports_of(path):
            assert not name.startswith(("torch", "measure")), (
                f"{path} imports {name}: the app goes through planner"
            )


WINGS = (
    "traffic",
    "serving",
    "evidence",
    "fleet",
    "llm",
)  # a wing imports only itself and the wings before it


def test_the_planner_wings_import_one_way() -> None:
    for path in (ROOT / "planner").rglob("*.py"):
        rel = path.relative_to(ROOT / "planner").parts
        if len(rel) < 2:
            continue
        mine = WINGS.index(rel[0])
        for name in imports_of(path):
            if name.startswith("planner."):
                wing = name.split(".")[1]
                assert WINGS.index(wing) <= mine, (
                    f"{path} ({rel[0]}) imports {name} ({wing}): wings import one way"
                )
    assert sorted(p.name for p in (ROOT / "planner").iterdir() if p.suffix == ".py") == ["__init__.py"]
