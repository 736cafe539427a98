"""The layout is the architecture: the direction of imports between the rooms
(module-level imports, as Python resolves them at start-up), and no import cycles, not
even through an import inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

from workflows.expressions import cycles

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"workflows": ROOT / "workflows", "textcnn": ROOT / "containers" / "textcnn"}


def _module(package: str, path: Path) -> str:
    parts = path.relative_to(PACKAGES[package]).with_suffix("").parts
    return ".".join((package, *parts)).removesuffix(".__init__")


def imports(lazy: bool = False) -> dict[str, set[str]]:
    """First-party module -> the first-party modules it imports at module level (with
    `lazy`, anywhere)."""
    modules = {_module(pkg, p): p for pkg, folder in PACKAGES.items() for p in folder.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree) if lazy else tree.body:
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def test_no_import_cycles() -> None:
    assert cycles(imports(lazy=True)) == []


def test_the_pod_package_never_imports_the_orchestration() -> None:
    leaks = {
        m: sorted(d)
        for m, d in imports().items()
        if m.startswith("textcnn") and any(t.startswith("workflows") for t in d)
    }
    assert leaks == {}


def test_rooms_import_in_one_direction() -> None:
    """Libraries never import step entrypoints; checks never import the DAG or the local
    runner; the DAG never imports the local runner; the local cluster never imports the
    project's code."""
    forbidden = {
        "textcnn.": "textcnn.steps",
        "workflows.checks": ("workflows.dag", "workflows.local"),
        "workflows.dag": "workflows.local",
        # The local cluster runs what it is given (workflows.hooks says what is ours).
        "workflows.kube": ("textcnn", "workflows.hooks", "workflows.dag"),
    }
    found = []
    for module, deps in imports().items():
        for room, banned in forbidden.items():
            if module.startswith(room) and not module.startswith("textcnn.steps"):
                found += [(module, d) for d in deps if d.startswith(banned)]
    assert found == []


def test_the_local_argo_knows_nothing_of_the_project() -> None:
    """workflows/local is an Argo emulator: `textcnn` appears in none of its code (what
    is ours comes in as hooks, workflows/hooks), not even in a string or a comment."""
    mentions = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "workflows" / "local").rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "textcnn" in line
    ]
    assert mentions == []
    lazy = imports(lazy=True)
    assert {
        m: d
        for m, d in lazy.items()
        if m.startswith("workflows.local")
        and any(t.startswith(("textcnn", "workflows.hooks", "workflows.kube")) for t in d)
    } == {}


MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def test_the_local_argo_is_made_of_small_parts() -> None:
    """No file of workflows/local over 400 lines, no function over 60."""
    long = []
    for path in sorted((ROOT / "workflows" / "local").rglob("*.py")):
        text = path.read_text()
        if (count := len(text.splitlines())) > MAX_FILE_LINES:
            long.append(f"{path.name}: {count} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{path.name}: {node.name} {size} lines")
    assert long == []
