"""The shape of the imports: no circle among the modules of sgd_dynamics/ and callbacks/, imports
one way (callbacks -> sgd_dynamics), and the analysis half of the library free of Lightning and
Hydra.

The import graph is read from the source (ast), every ``import`` statement wherever it stands:
module level, inside functions (lazy imports), under ``if TYPE_CHECKING``. Importing
``a.b.c`` also runs the ``__init__`` of the packages ``a.b`` and ``a``, so an edge to a module
adds edges to its packages too (those the importing module does not itself belong to: Python
has initialised them before the module runs).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("sgd_dynamics", "callbacks")
LIBRARY_WITHOUT_LIGHTNING = (
    "sgd_dynamics.curvature",
    "sgd_dynamics.data",
    "sgd_dynamics.run_folder.files",
    "sgd_dynamics.run_folder.hydra_record",
    "sgd_dynamics.run_folder.location",
    "sgd_dynamics.run_folder.snapshots",
    "sgd_dynamics.run_folder.status",
    "sgd_dynamics.plots",
    "sgd_dynamics.report",
    "sgd_dynamics.report.figures",
)
FORBIDDEN = ("pytorch_lightning", "lightning", "lightning_fabric", "hydra", "omegaconf")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of PACKAGES (a package: its __init__)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_names(name: str, path: Path) -> set[str]:
    """Every dotted name `path` imports (absolute; ``from a import b`` gives a and a.b)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules its import statements run (their packages included)."""
    modules = module_files()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
        edges = set()
        for target in imported_names(name, path):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix != name and prefix not in own_packages:
                    edges.add(prefix)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of `graph` with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_reader_sees_lazy_and_relative_imports(tmp_path):
    source = tmp_path / "mod.py"
    source.write_text(
        "import os\nfrom . import sibling\ndef f():\n    from pkg.other import thing\n"
    )
    names = imported_names("pkg.sub.mod", source)
    assert {"os", "pkg.sub", "pkg.sub.sibling", "pkg.other", "pkg.other.thing"} <= names
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_circle_in_the_library_and_the_callbacks():
    graph = import_graph()
    assert "sgd_dynamics.report" in graph and "callbacks.spectral" in graph
    assert cycles(graph) == []


def test_the_library_never_imports_the_callbacks():
    graph = import_graph()
    wrong = {
        (name, target)
        for name, targets in graph.items()
        if name.startswith("sgd_dynamics")
        for target in targets
        if target.split(".")[0] == "callbacks"
    }
    assert wrong == set()


def test_the_analysis_modules_import_neither_lightning_nor_hydra():
    code = (
        "import sys\n"
        f"for name in {LIBRARY_WITHOUT_LIGHTNING!r}:\n"
        "    __import__(name)\n"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))\n"
        "print(bad)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


def test_the_top_level_of_the_library_is_its_packages():
    """Concepts live in packages (run_folder, report, wandb_io, launch, ...); at most four loose
    modules stay at the top of sgd_dynamics/ (the command line, the schema, the model, the
    schedule)."""
    loose = sorted(
        p.name for p in (REPO_ROOT / "sgd_dynamics").glob("*.py") if p.name != "__init__.py"
    )
    assert loose == ["cli.py", "config_schema.py", "models.py", "schedule.py"]
