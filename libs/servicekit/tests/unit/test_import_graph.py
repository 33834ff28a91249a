"""The kit reads top-down: no module of servicekit imports, directly or through others, a
module that imports it back (type-checking imports and imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import servicekit

PACKAGE = Path(servicekit.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported(name: str, path: Path) -> set[str]:
    """The kit's modules that ``name`` imports, its parent packages included (Python
    runs a package's ``__init__`` before any module in it)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's own package upwards
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(t for t in targets if t in MODULES)
    parents = {name.rsplit(".", i)[0] for i in range(1, name.count(".") + 1)}
    return (found | parents) - {name}


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle a depth-first walk meets, each as the path that closes it."""
    found, state, stack = [], dict.fromkeys(graph, "new"), []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state[nxt] == "open":
                found.append([*stack[stack.index(nxt):], nxt])
            elif state[nxt] == "new":
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if state[node] == "new":
            visit(node)
    return found


def test_the_walk_finds_a_cycle_where_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]


def test_the_walk_sees_the_kits_imports():
    assert "servicekit.kit" in GRAPH["servicekit.unit_of_work"]
    assert "servicekit.unit_of_work" in GRAPH["servicekit.hotpath.unit_of_work"]
    assert "servicekit.hotpath" in GRAPH["servicekit.hotpath.pipeline"]  # its package


def test_no_module_of_the_kit_imports_itself_back():
    assert cycles(GRAPH) == []
