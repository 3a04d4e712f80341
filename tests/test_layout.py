"""The package layout promises: import direction, one registry, console scripts."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import REPO

FOLDERS = ("infer", "train", "app", "node")  # the toolkit's packages, installed as mrnet.<folder>


def test_inference_and_app_do_not_import_torch():
    code = ("import sys, mrnet.infer, mrnet.infer.cli, mrnet.infer.predictor, mrnet.infer.reading, mrnet.app, "
            "mrnet.infer.dicom_results.structured_report, mrnet.node.cli, mrnet.node.service; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_infer_never_imports_train_or_app():
    offenders = []
    for path in (REPO / "infer").rglob("*.py"):
        text = path.read_text()
        if re.search(r"^\s*(from|import)\s+(mrnet\.(train|app)|torch)\b", text, re.M):
            offenders.append(path.name)
    assert offenders == []


def test_app_imports_only_infer():
    offenders = []
    for path in (REPO / "app").rglob("*.py"):
        if re.search(r"^\s*(from|import)\s+(mrnet\.train|torch)\b", path.read_text(), re.M):
            offenders.append(path.name)
    assert offenders == []


def test_the_node_imports_only_infer():
    offenders = []
    for path in (REPO / "node").rglob("*.py"):
        if re.search(r"^\s*(from|import)\s+(mrnet\.(train|app)|torch)\b", path.read_text(), re.M):
            offenders.append(path.name)
    assert offenders == []


def test_planes_and_tasks_are_spelled_out_only_in_the_registry():
    pattern = re.compile(r"""["']axial["']\s*,\s*["']coronal["']|["']abnormal["']\s*,\s*["']acl["']\s*,""")
    offenders = [str(p.relative_to(REPO)) for folder in FOLDERS
                 for p in (REPO / folder).rglob("*.py")
                 if p.name != "registry.py" and pattern.search(p.read_text())]
    assert offenders == []


def test_packages_install_under_mrnet_only(tmp_path):
    # Run outside the checkout so that only what is installed can be found.
    code = ("import importlib.util as u; "
            "print([n for n in ('train', 'infer', 'app') if u.find_spec(n)], "
            "all(u.find_spec(n) for n in ('mrnet.train', 'mrnet.infer', 'mrnet.app')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=tmp_path)
    assert result.stdout.strip() == "[] True"


def test_console_scripts_answer_help():
    for script in ("mrnet-train", "mrnet-predict"):
        exe = REPO / ".venv" / "bin" / script
        command = [str(exe)] if exe.exists() else [script]
        result = subprocess.run(command + ["--help"], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "Usage" in result.stdout


def _module_name(path) -> str:
    package = {folder: f"mrnet.{folder}" for folder in FOLDERS}[path.relative_to(REPO).parts[0]]
    parts = list(path.relative_to(REPO).with_suffix("").parts[1:])
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def import_graph() -> dict[str, set[str]]:
    """Which of the toolkit's modules each module imports, read from the source: every import
    statement counts, also one inside a function (a lazy import still closes a cycle). `from P
    import name` is an edge to the module P.name when that is a module, else to P. A package's
    own `__init__` is an edge only where something imports the package itself (Python loads it
    before any of its modules, but that is loading, not one module depending on another)."""
    import ast

    files = {_module_name(p): p for folder in FOLDERS for p in (REPO / folder).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = ".".join(p for p in (base if node.level else "", node.module or "") if p)
                targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in files else source for a in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for child in sorted(graph[node]):
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in on_stack:
                low[node] = min(low[node], index[child])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_lazy_cycle():
    graph = import_graph()
    assert "mrnet.infer.reading.types" in graph["mrnet.infer.reading.dicom"]
    assert "mrnet.infer.reading.dicom" in graph["mrnet.infer.reading"]  # the dispatcher's lazy import
    graph["mrnet.infer.reading.types"] = graph["mrnet.infer.reading.types"] | {"mrnet.infer.reading.dicom"}
    assert any({"mrnet.infer.reading.dicom", "mrnet.infer.reading.types"} <= set(c) for c in cycles(graph))


def test_no_module_is_over_450_lines():
    long = {str(p.relative_to(REPO)): n for folder in FOLDERS for p in (REPO / folder).rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 450}
    assert long == {}
