"""The covet package's import graph has no cycle, function-level imports included.

import-linter (``lint-imports``, [tool.importlinter] in pyproject.toml) checks the layers; this test reads
the source itself (an AST walk, so an import inside a function counts as much as one at the top of a
module) and fails on any cycle between the package's modules, naming it. Imports under ``if TYPE_CHECKING:``
are left out: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "bindings" / "python" / "covet"


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules `name` imports anywhere in its code (not under ``if TYPE_CHECKING:``)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
    targets: set[str] = set()
    for target in found:
        if target not in modules or target == name or name.startswith(target + "."):
            continue  # not the package's, or this module's own package (already being imported)
        targets.add(target)
        # Importing a.b.c runs the packages a.b and a first: edges to those this module is not inside of.
        parts = target.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if not (name == parent or name.startswith(parent + ".")):
                targets.add(parent)
    return targets


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle as [a, b, ..., a], or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return []


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert len(graph) > 20 and "covet.server.dispatch" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert not cycle, "import cycle (function-level imports included): " + " -> ".join(cycle)


def test_the_runtime_does_not_import_the_app_module() -> None:
    """covet.server works on the `ServedApp` interface, never on `CovetPy` itself."""
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("covet.server"):
            assert "covet.app" not in targets and "covet.testing" not in targets, name


def test_the_checker_sees_function_level_imports(tmp_path: Path) -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    source = tmp_path / "x.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import y\n"
                      "def f():\n    from . import app\n", encoding="utf-8")
    known = {"covet.app": Path(), "covet.x": source, "covet.y": Path()}
    assert _imports("covet.x", source, known) == {"covet.app"}
