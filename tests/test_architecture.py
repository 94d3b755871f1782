"""The dependency direction of DESIGN.md: app -> planner -> measure.run (the torch-free run contract, with its
strict file readers); readers never import torch; measure/ and planner/ are wings that import one way; no circles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLANNER_MAY_USE = ("measure.run",)  # and its submodules
TORCH_FREE = (
    "measure.run",
    "measure.run.datafile",
    "measure.core",
    "measure.core.stats",
    "measure.core.steady_state",
    "measure.core.pacing",
    "measure.core.summary",
    "measure.sensors.telemetry",
    "measure.cluster.campaign",
    "planner.evidence.catalog",
    "planner.serving.simulation",
    "fleetwise_cli.main",
    # the engine client: measuring a remote engine is an HTTP client and runs where torch is not installed
    "measure.core.parsing",
    "measure.engine_client",
    "measure.engine_client.http",
    "measure.engine_client.closed_loop",
    "measure.engine_client.open_loop",
    "fleetwise_cli.commands.measure_llm",
    "fleetwise_cli.commands.validate_llm",
    "fleetwise_cli.render.progress",
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
                assert name.startswith(tuple(m + "." for m in PLANNER_MAY_USE)) or name in PLANNER_MAY_USE, (
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
    "question",
)  # a wing imports only itself and the wings before it
BELOW_WINGS = ["__init__.py", "workers.py"]  # where tasks run (local pool or Ray) and the runs they read


def test_the_planner_wings_import_one_way() -> None:
    for path in (ROOT / "planner").rglob("*.py"):
        rel = path.relative_to(ROOT / "planner").parts
        if len(rel) < 2:
            continue
        mine = WINGS.index(rel[0])
        for name in imports_of(path):
            if name.startswith("planner."):
                wing = name.split(".")[1]
                if f"{wing}.py" in BELOW_WINGS:
                    continue
                assert WINGS.index(wing) <= mine, (
                    f"{path} ({rel[0]}) imports {name} ({wing}): wings import one way"
                )
    # below every wing: where tasks run (local pool or Ray) and the runs they read
    assert sorted(p.name for p in (ROOT / "planner").iterdir() if p.suffix == ".py") == BELOW_WINGS
    for name in BELOW_WINGS:
        for imported in imports_of(ROOT / "planner" / name):
            assert not imported.startswith(tuple(f"planner.{w}" for w in WINGS)), (
                f"planner/{name} imports {imported}"
            )


# measure/'s wings and what each may import besides itself: the run contract at the bottom, the HTTP engine client
# beside the in-process measurement (it never needs a device, a workload or torch), batch and LLM sweeps as peers.
MEASURE_MAY_USE = {
    "run": set(),
    "core": {"run"},
    "workloads": {"run", "core"},
    "device": {"run", "core", "workloads"},
    "sensors": {"run", "core", "device"},
    "inprocess": {"run", "core", "workloads", "device", "sensors"},
    "batch": {"run", "core", "workloads", "device", "sensors", "inprocess"},
    "llm": {"run", "core", "workloads", "device", "sensors", "inprocess"},
    "engine_client": {"run", "core"},
    "cluster": set(),
}


def test_the_measure_wings_import_one_way() -> None:
    assert sorted(p.name for p in (ROOT / "measure").iterdir() if p.suffix == ".py") == ["__init__.py"]
    wings = sorted(p.name for p in (ROOT / "measure").iterdir() if (p / "__init__.py").exists())
    assert wings == sorted(MEASURE_MAY_USE)
    for path in (ROOT / "measure").rglob("*.py"):
        rel = path.relative_to(ROOT / "measure").parts
        if len(rel) < 2:
            continue
        allowed = MEASURE_MAY_USE[rel[0]] | {rel[0]}
        for name in imports_of(path):
            if name == "measure":
                raise AssertionError(f"{path} imports the measure package itself; name the wing")
            if name.startswith("measure."):
                assert name.split(".")[1] in allowed, f"{path} ({rel[0]}) imports {name}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of the project that `path` imports at any depth (lazy imports too), except TYPE_CHECKING ones."""
    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
    return {m for m in found if m in known}


def test_no_module_imports_itself_back_through_others() -> None:
    paths = [
        p
        for folder in ("measure", "planner", "fleetwise_cli", "pages")
        for p in (ROOT / folder).rglob("*.py")
    ] + [ROOT / "app.py", ROOT / "serve.py"]
    known = {module_name(p) for p in paths}
    graph = {module_name(p): project_imports(p, known) - {module_name(p)} for p in paths}
    # a package's __init__ that re-exports its modules is not a circle with them
    for mod, deps in graph.items():
        graph[mod] = {d for d in deps if not mod.startswith(d + ".")}
    circles = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == [], f"import circles: {circles}"


def test_the_tests_mirror_the_wings() -> None:
    """tests/measure/<wing>/ and tests/planner/<wing>/ hold the tests of that wing; no folder for a wing that is
    not there, and no loose test file beside the wings except the few that test the package as a whole."""
    for package, loose in (("measure", set()), ("planner", {"test_workers.py"})):
        folders = {
            p.name for p in (ROOT / "tests" / package).iterdir() if p.is_dir() and p.name != "__pycache__"
        }
        wings = {p.name for p in (ROOT / package).iterdir() if (p / "__init__.py").exists()}
        assert folders <= wings, f"tests/{package}/ has folders for no wing: {sorted(folders - wings)}"
        files = {p.name for p in (ROOT / "tests" / package).glob("test_*.py")}
        assert files == loose, f"tests/{package}/ test files outside a wing's folder: {sorted(files - loose)}"


def test_one_model_base_for_files_and_one_for_results() -> None:
    """measure.run.types has FileModel (read from files: extra fields refused) and ResultModel (computed); no
    module keeps its own copy of a frozen pydantic base."""
    for folder in ("measure", "planner"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ClassDef) and any(ast.unparse(b) == "BaseModel" for b in node.bases):
                    body = ast.unparse(node)
                    assert "model_config" not in body or path.name == "types.py", (
                        f"{path}: {node.name} sets its own model_config; derive from FileModel or ResultModel"
                    )
